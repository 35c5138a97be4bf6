package simlan_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/stack"
)

// Hosts get internal/frames' addresses by number, a recording host sees
// the frames sent to it, and a hook after the recorder decides what
// netstack gets.
func TestHostsRecordAndHook(t *testing.T) {
	lan := simlan.New(t, simlan.Options{Seed: 1, Record: true},
		simlan.HostOptions{N: frames.Peer}, simlan.HostOptions{N: frames.Stack})
	peer, st := lan.Hosts[0], lan.Hosts[1]
	if peer.MAC() != frames.PeerMAC || st.MAC() != frames.StackMAC {
		t.Fatalf("MACs %v, %v", peer.MAC(), st.MAC())
	}
	lan.Run(time.Second) // IPv6 set-up traffic
	peer.Frames()
	st.Frames()

	sock := peer.BindUDP(t, 40000)
	recv := st.BindUDP(t, 20000)
	var hooked int
	st.SetHook(func(frame []byte) link.Verdict {
		if _, ok := frames.ParseUDP(frame); ok {
			hooked++
		}
		return link.Pass
	})
	to := stack.FullAddress(netip.AddrPortFrom(frames.StackV4, 20000))
	if _, err := sock.Write(bytes.NewReader([]byte("hello")), tcpip.WriteOptions{To: &to}); err != nil {
		t.Fatal(err)
	}
	lan.Run(10 * time.Millisecond)

	var got []frames.Datagram
	for _, f := range st.Frames() {
		if d, ok := frames.ParseUDP(f); ok {
			got = append(got, d)
		}
	}
	want := []frames.Datagram{{
		DstMAC: frames.StackMAC, Payload: []byte("hello"),
		Src: netip.AddrPortFrom(frames.PeerV4, 40000), Dst: netip.AddrPortFrom(frames.StackV4, 20000),
	}}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); d != "" {
		t.Errorf("recorded datagrams (-want +got):\n%s", d)
	}
	if hooked != 1 {
		t.Errorf("the hook saw %d datagrams, want 1", hooked)
	}
	var b bytes.Buffer
	if _, err := recv.Read(&b, tcpip.ReadOptions{}); err != nil || b.String() != "hello" {
		t.Errorf("netstack received %q, %v", b.String(), err)
	}
}
