package simlan_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
)

// Media ports on two hosts exchange datagrams; Drain reads them without
// blocking.
func TestMediaPorts(t *testing.T) {
	opts := &mediaport.Options{PortMin: 20000, PortMax: 20009}
	lan := simlan.New(t, simlan.Options{Seed: 1}, simlan.HostOptions{N: 1, Media: opts}, simlan.HostOptions{N: 2, Media: opts})
	a, b := simlan.Open(t, lan.Hosts[0].Media, 20000), simlan.Open(t, lan.Hosts[1].Media, 20002)
	lan.Run(time.Second)
	for _, msg := range []string{"one", "two"} {
		if _, err := a.WriteToUDPAddrPort([]byte(msg), netip.AddrPortFrom(frames.V4(2), 20002)); err != nil {
			t.Fatal(err)
		}
		lan.Run(10 * time.Millisecond)
	}
	from := netip.AddrPortFrom(frames.V4(1), 20000).String()
	if d := cmp.Diff([]simlan.Datagram{{"one", from}, {"two", from}}, simlan.Drain(t, b)); d != "" {
		t.Errorf("Drain (-want +got):\n%s", d)
	}
	if got := simlan.Drain(t, b); len(got) != 0 {
		t.Errorf("a second Drain read %v", got)
	}
}
