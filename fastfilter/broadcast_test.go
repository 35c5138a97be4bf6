package fastfilter_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
)

// TestNetstackLaneDrops sends what the fast lane passes on to netstack and
// the netstack lane must not deliver: datagrams to a broadcast or multicast
// address (unless the registration asked for them) and a martian with IP
// options (which the fast lane leaves to netstack).
func TestNetstackLaneDrops(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	to := func(dst netip.Addr, mac tcpip.LinkAddress, payload string) []byte {
		u := v4Frame([]byte(payload))
		if dst.Is6() {
			u = v6Frame([]byte(payload))
		}
		u.Dst, u.DstMAC = netip.AddrPortFrom(dst, rtpPort), mac
		return u.Build()
	}
	broadcasts := [][]byte{
		to(netip.MustParseAddr("198.51.100.255"), header.EthernetBroadcastAddress, "subnet broadcast"),
		to(netip.MustParseAddr("255.255.255.255"), header.EthernetBroadcastAddress, "limited broadcast"),
		to(netip.MustParseAddr("ff02::1"), "\x33\x33\x00\x00\x00\x01", "all nodes"),
	}
	martian := v4Frame([]byte("own source with options"))
	martian.Src = netip.AddrPortFrom(frames.StackV4, peerPort)
	martian.IPOptions = []byte{1, 1, 1, 0} // no-ops: passed on to netstack

	for _, frame := range append(broadcasts, martian.Build()) {
		fx.ep.DeliverFrame(frame)
	}
	if got := fx.rec.take(); len(got) != 0 {
		t.Errorf("delivered %+v; want nothing", got)
	}
	c := fx.reg.PortCounters(rtpPort)
	if c.Dropped.Broadcast != 3 || c.Dropped.Martian != 1 || c.NetstackDelivered != 0 {
		t.Errorf("port counters %v; want 3 broadcast and 1 martian drops", c)
	}

	fx.reg.SetAcceptBroadcast(true)
	for _, frame := range broadcasts {
		fx.ep.DeliverFrame(frame)
	}
	var got []string
	for _, d := range fx.rec.take() {
		if !d.ViaNetstack {
			t.Errorf("%q came by the fast lane", d.Payload)
		}
		got = append(got, d.Payload)
	}
	if diff := cmp.Diff([]string{"subnet broadcast", "limited broadcast", "all nodes"}, got); diff != "" {
		t.Errorf("with SetAcceptBroadcast(true), delivered (-want +got):\n%s", diff)
	}
}
