//go:build linux

package raw_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/raw"
)

// nullDispatcher takes netstack's part: it starts an endpoint's reader and
// drops what it is given.
type nullDispatcher struct{}

func (nullDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *tcpipstack.PacketBuffer) {}
func (nullDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *tcpipstack.PacketBuffer)    {}

// hookRecorder keeps copies of the frames a hook sees.
type hookRecorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *hookRecorder) hook(f []byte) link.Verdict {
	r.mu.Lock()
	r.frames = append(r.frames, append([]byte(nil), f...))
	r.mu.Unlock()
	return link.Handled
}

func (r *hookRecorder) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.frames
	r.frames = nil
	return f
}

// TestVLANOverTheKernel sends frames between raw links on the two ends of
// a veth pair. The kernel moves the 802.1Q tag of every frame it receives
// into the socket's auxiliary data; the receiving link must put it back
// and keep only its VLAN's frames, tag-free, as a VLAN sub-interface does.
func TestVLANOverTheKernel(t *testing.T) {
	wire := netnstest.NewVethPair(t)
	start := func(iface string, vlan uint16) (*raw.Endpoint, *hookRecorder) {
		ep := newEndpoint(t, raw.Options{Interface: iface, VLAN: vlan})
		rec := new(hookRecorder)
		ep.SetFrameHook(rec.hook)
		ep.Attach(nullDispatcher{})
		return ep, rec
	}
	tagging, _ := start(wire.Outside, 100)
	plain, _ := start(wire.Outside, 0)
	on100, got100 := start(wire.Inside, 100)
	on7, got7 := start(wire.Inside, 7)
	untagged, gotUntagged := start(wire.Inside, 0)

	datagram := func(i int) []byte {
		return frames.UDP{
			Src:     netip.AddrPortFrom(frames.PeerV4, 40000),
			Dst:     netip.AddrPortFrom(frames.StackV4, 20000),
			SrcMAC:  tagging.LinkAddress(),
			DstMAC:  on100.LinkAddress(),
			Payload: fmt.Appendf(nil, "datagram %d", i),
		}.Build()
	}
	const sent = 10
	var want [][]byte
	for i := range sent {
		if _, err := tagging.WriteFrames([][]byte{datagram(i)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, datagram(i))
	}
	if _, err := plain.WriteFrames([][]byte{datagram(sent)}); err != nil {
		t.Fatal(err)
	}
	netnstest.WaitFor(t, hangGuard, "every link counting the frames", func() error {
		if n := on7.Stats.RxDropOtherVLAN.Load() + on7.Stats.RxDropUntagged.Load(); n != sent+1 {
			return fmt.Errorf("VLAN 7 link dropped %d of %d", n, sent+1)
		}
		if n := on100.Stats.RxDropUntagged.Load(); n != 1 {
			return fmt.Errorf("VLAN 100 link dropped %d untagged, want 1", n)
		}
		if n := untagged.Stats.RxDropOtherVLAN.Load(); n != sent {
			return fmt.Errorf("untagged link dropped %d of VLAN 100's, want %d", n, sent)
		}
		return nil
	})
	if diff := cmp.Diff(want, got100.take()); diff != "" {
		t.Errorf("VLAN 100 link's hook (-want +got):\n%s", diff)
	}
	if got := got7.take(); len(got) != 0 {
		t.Errorf("VLAN 7 link's hook saw %d frames, want none", len(got))
	}
	if diff := cmp.Diff([][]byte{datagram(sent)}, gotUntagged.take()); diff != "" {
		t.Errorf("untagged link's hook (-want +got):\n%s", diff)
	}
	if n := on7.Stats.RxDropOtherVLAN.Load(); n != sent {
		t.Errorf("VLAN 7 link: RxDropOtherVLAN = %d, want %d", n, sent)
	}
}
