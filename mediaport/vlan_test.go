package mediaport_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
)

// TestVLANBothLanes runs A and B on VLAN 100 of a simulated LAN, beside C,
// untagged, with B's addresses: media flows between A and B both ways over
// IPv4 and IPv6 (netstack's first datagram, ARP and NDP included, then
// the fast path's), and nothing C sends reaches A, nor anything of A's C.
func TestVLANBothLanes(t *testing.T) {
	const vlan = 100
	opts := mediaport.Options{PortMin: 20000, PortMax: 20099}
	lan := simlan.New(t, simlan.Options{Seed: 1},
		simlan.HostOptions{N: hostA, VLAN: vlan, Media: &opts},
		simlan.HostOptions{N: hostB, VLAN: vlan, Media: &opts},
		simlan.HostOptions{N: 3, Addrs: []string{frames.Prefix(addrB4).String(), frames.Prefix(addrB6).String()}, Media: &opts})
	lan.Run(time.Second)
	a, b, c := lan.Hosts[0], lan.Hosts[1], lan.Hosts[2]
	open := func(h *simlan.Host) *mediaport.Port {
		p, err := h.Media.Open(20000)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	pa, pb, pc := open(a), open(b), open(c)

	const rounds = 10
	for _, dst := range []netip.Addr{addrB4, addrB6} {
		src := addrA4
		if dst.Is6() {
			src = addrA6
		}
		var wantB, wantA []simlan.Datagram
		for i := range rounds {
			msg := fmt.Sprintf("to %v #%d", dst, i)
			if _, err := pa.WriteToUDPAddrPort([]byte(msg), netip.AddrPortFrom(dst, 20000)); err != nil {
				t.Fatal(err)
			}
			lan.Run(10 * time.Millisecond)
			wantB = append(wantB, simlan.Datagram{Payload: msg, From: netip.AddrPortFrom(src, 20000).String()})
			if _, err := pb.WriteToUDPAddrPort([]byte("re "+msg), netip.AddrPortFrom(src, 20000)); err != nil {
				t.Fatal(err)
			}
			lan.Run(10 * time.Millisecond)
			wantA = append(wantA, simlan.Datagram{Payload: "re " + msg, From: netip.AddrPortFrom(dst, 20000).String()})
		}
		if diff := cmp.Diff(wantB, drain(t, pb)); diff != "" {
			t.Errorf("B received (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantA, drain(t, pa)); diff != "" {
			t.Errorf("A received (-want +got):\n%s", diff)
		}
	}
	for _, p := range []*mediaport.Port{pa, pb} {
		st := p.Stats()
		// Each side's first datagram to each family goes through netstack
		// (it resolves the peer); the rest go fast, both ways.
		if st.Receive.FastDelivered < 2*rounds-2 || st.Send.Fast < 2*rounds-2 {
			t.Errorf("want all but one datagram per family fast: %v", st)
		}
	}
	if got := drain(t, pc); len(got) != 0 {
		t.Errorf("C, untagged, received %v", got)
	}

	// C, untagged, cannot reach A: A drops its frames, counted.
	before := a.Link.Stats.RxDropUntagged.Load()
	if _, err := pc.WriteToUDPAddrPort([]byte("from C"), netip.AddrPortFrom(addrA4, 20000)); err != nil {
		t.Fatal(err)
	}
	lan.Run(time.Second)
	if got := drain(t, pa); len(got) != 0 {
		t.Errorf("A received %v from C, untagged", got)
	}
	if a.Link.Stats.RxDropUntagged.Load() == before {
		t.Error("A counted none of C's untagged frames as dropped")
	}
	if c.Link.Stats.RxDropOtherVLAN.Load() == 0 {
		t.Error("C counted none of VLAN 100's frames as dropped")
	}
}
