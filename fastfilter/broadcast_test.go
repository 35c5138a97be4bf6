package fastfilter_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
)

// TestNetstackLaneDrops sends what the fast lane passes on to netstack and
// the netstack lane must not deliver: datagrams to a broadcast or multicast
// address (unless the registration asked for them) and a martian with IP
// options (which the fast lane leaves to netstack).
func TestNetstackLaneDrops(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprintf("lazy=%v", lazy), func(t *testing.T) { testNetstackLaneDrops(t, lazy) })
	}
}

func testNetstackLaneDrops(t *testing.T, lazy bool) {
	fx := newFixture(t, fixtureOptions{lazy: lazy})
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

// TestLazyLanes: with Options.UnboundUDP a registered port has no netstack
// endpoint until one is asked for; meanwhile its netstack lane (here a
// datagram with IP options) comes through the stack's default UDP handler,
// then through the endpoint; a port a netstack socket holds is still
// refused, and a closed registration's lane delivers nothing.
func TestLazyLanes(t *testing.T) {
	fx := newFixture(t, fixtureOptions{lazy: true})
	if _, err := fx.bindNetstack(t, header.IPv4ProtocolNumber, 30001); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.Register(30000, 30002, nop); !errors.Is(err, fastfilter.ErrPortInUse) {
		t.Fatalf("Register over a bound netstack socket: %v, want ErrPortInUse", err)
	}
	withOptions := func(payload string) []byte {
		u := v4Frame([]byte(payload))
		u.IPOptions = []byte{1, 1, 1, 0}
		return u.Build()
	}
	fx.ep.DeliverFrame(withOptions("before the endpoint"))
	ep, err := fx.reg.OpenNetstackEndpoint(rtpPort)
	if err != nil || ep == nil {
		t.Fatalf("OpenNetstackEndpoint: %v, %v", ep, err)
	}
	if again := fx.reg.NetstackEndpoint(rtpPort); again != ep {
		t.Error("NetstackEndpoint opened a second endpoint")
	}
	fx.ep.DeliverFrame(withOptions("through the endpoint"))
	var got []string
	for _, d := range fx.rec.take() {
		if !d.ViaNetstack || d.Src != netip.AddrPortFrom(frames.PeerV4, peerPort) || d.Dst != netip.AddrPortFrom(frames.StackV4, rtpPort) {
			t.Errorf("netstack lane delivered %+v", d)
		}
		got = append(got, d.Payload)
	}
	if diff := cmp.Diff([]string{"before the endpoint", "through the endpoint"}, got); diff != "" {
		t.Errorf("netstack lane (-want +got):\n%s", diff)
	}
	if c := fx.reg.PortCounters(rtpPort); c.NetstackDelivered != 2 {
		t.Errorf("NetstackDelivered = %d, want 2", c.NetstackDelivered)
	}
	fx.reg.Close()
	fx.ep.DeliverFrame(withOptions("after Close"))
	if got := fx.rec.take(); len(got) != 0 {
		t.Errorf("a closed registration's lane delivered %+v", got)
	}
	if _, err := fx.reg.OpenNetstackEndpoint(rtpPort + 1); !errors.Is(err, fastfilter.ErrClosed) {
		t.Errorf("OpenNetstackEndpoint after Close: %v, want ErrClosed", err)
	}
}
