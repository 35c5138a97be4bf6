package fastfilter_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/stack"
)

// arp is an ARP packet from the peer's address at mac about target.
func arp(op header.ARPOp, dstMAC, mac tcpip.LinkAddress, target netip.Addr) []byte {
	return frames.ARP{Op: op, DstMAC: dstMAC, SenderMAC: mac, SenderIP: frames.PeerV4, TargetIP: target}.Build()
}

// na is a Neighbor Advertisement of the peer's address at mac.
func na(mac tcpip.LinkAddress, solicited, override bool, hopLimit uint8, withTLLA bool) []byte {
	return frames.NA{Target: frames.PeerV6, MAC: mac, Solicited: solicited, Override: override, HopLimit: hopLimit, TLLA: withTLLA}.Build()
}

type neighborUpdate struct {
	IP  string
	MAC tcpip.LinkAddress
}

func TestNeighborUpdates(t *testing.T) {
	newMAC := frames.MAC(0x77)
	badChecksum := frames.UnsolicitedNA(frames.PeerV6, newMAC)
	badChecksum[len(badChecksum)-1] ^= 1
	for _, tc := range []struct {
		name  string
		frame []byte
		want  []neighborUpdate
	}{
		{"gratuitous request", frames.GratuitousARP(header.ARPRequest, frames.PeerV4, newMAC), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"gratuitous reply", frames.GratuitousARP(header.ARPReply, frames.PeerV4, newMAC), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"broadcast reply", arp(header.ARPReply, header.EthernetBroadcastAddress, newMAC, frames.StackV4), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"unicast reply about another target", arp(header.ARPReply, frames.StackMAC, newMAC, frames.V4(otherHost)), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"answer to our request", arp(header.ARPReply, frames.StackMAC, newMAC, frames.StackV4), nil},
		{"ordinary request", arp(header.ARPRequest, header.EthernetBroadcastAddress, newMAC, frames.StackV4), nil},
		{"address probe", frames.GratuitousARP(header.ARPRequest, netip.IPv4Unspecified(), newMAC), nil},
		{"unsolicited NA with TLLA", frames.UnsolicitedNA(frames.PeerV6, newMAC), []neighborUpdate{{"2001:db8::1", newMAC}}},
		{"unsolicited NA without TLLA", na(newMAC, false, true, header.NDPHopLimit, false), []neighborUpdate{{"2001:db8::1", newMAC}}},
		{"solicited NA", na(newMAC, true, true, header.NDPHopLimit, true), nil},
		{"NA without override", na(newMAC, false, false, header.NDPHopLimit, true), nil},
		{"NA hop limit 64", na(newMAC, false, true, 64, true), nil},
		{"NA bad checksum", badChecksum, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, fixtureOptions{})
			var got []neighborUpdate
			fx.f.SubscribeNeighborUpdates(func(ip tcpip.Address, mac tcpip.LinkAddress) {
				got = append(got, neighborUpdate{stack.AddrTo(ip).String(), mac})
			})
			if v := fx.f.Hook(tc.frame); v != link.Pass {
				t.Errorf("verdict %v, want pass: netstack must see the frame too", v)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("updates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNeighborUpdateReachesNetstack checks that netstack still learns from a
// gratuitous ARP the hook reported: the hook passes the frame on.
func TestNeighborUpdateReachesNetstack(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	var updates int
	fx.f.SubscribeNeighborUpdates(func(tcpip.Address, tcpip.LinkAddress) { updates++ })
	fx.ep.DeliverFrame(frames.GratuitousARP(header.ARPRequest, frames.PeerV4, frames.PeerMAC))
	if updates != 1 {
		t.Fatalf("%d updates, want 1", updates)
	}
	if got := fx.ep.Stats.RxToNetstack.Load(); got != 1 {
		t.Errorf("link RxToNetstack = %d, want 1", got)
	}
	if got := fx.st.Netstack().Stats().ARP.PacketsReceived.Value(); got != 1 {
		t.Errorf("netstack ARP PacketsReceived = %d, want 1", got)
	}
}

type tooBigReport struct {
	Local, Remote string
	Port          uint16
	MTU           uint32
}

// TestPacketTooBig: a router's ICMP "fragmentation needed" / "packet too
// big" about a datagram a registered port sent is reported, with the
// quoted addresses and port and the MTU; forged or foreign ones are not; the
// frame goes on to netstack either way.
func TestPacketTooBig(t *testing.T) {
	quote := func(src netip.Addr, port uint16, dst netip.Addr, proto tcpip.TransportProtocolNumber) []byte {
		frame := frames.UDP{Src: netip.AddrPortFrom(src, port), Dst: netip.AddrPortFrom(dst, 5000), Payload: make([]byte, 1400), Protocol: proto}.Build()
		return frame[header.EthernetMinimumSize:]
	}
	v4 := quote(frames.StackV4, rtpPort, frames.Remote4, 0)
	v6 := quote(frames.StackV6, rtpPort+1, frames.Remote6, 0)
	router4, router6 := frames.V4(otherHost), frames.V6(otherHost)
	for _, tc := range []struct {
		name string
		msg  frames.TooBig
		want []tooBigReport
	}{
		{"v4", frames.TooBig{Router: router4, Dst: frames.StackV4, Quoted: v4[:28], MTU: 1400},
			[]tooBigReport{{"198.51.100.2", "203.0.113.9", rtpPort, 1400}}},
		{"v4 quoting more", frames.TooBig{Router: router4, Dst: frames.StackV4, Quoted: v4[:548], MTU: 1280},
			[]tooBigReport{{"198.51.100.2", "203.0.113.9", rtpPort, 1280}}},
		{"v6", frames.TooBig{Router: router6, Dst: frames.StackV6, Quoted: v6[:1232], MTU: 1280},
			[]tooBigReport{{"2001:db8::2", "2001:db8:1::9", rtpPort + 1, 1280}}},
		{"v4 bad checksum", frames.TooBig{Router: router4, Dst: frames.StackV4, Quoted: v4[:28], MTU: 1400, BadChecksum: true}, nil},
		{"v6 bad checksum", frames.TooBig{Router: router6, Dst: frames.StackV6, Quoted: v6[:48], MTU: 1280, BadChecksum: true}, nil},
		{"v4 quoted header truncated", frames.TooBig{Router: router4, Dst: frames.StackV4, Quoted: v4[:24], MTU: 1400}, nil},
		{"v4 not to us", frames.TooBig{Router: router4, Dst: frames.V4(99), Quoted: v4[:28], MTU: 1400}, nil},
		{"v4 quoting another's datagram", frames.TooBig{Router: router4, Dst: frames.StackV4,
			Quoted: quote(frames.PeerV4, rtpPort, frames.Remote4, 0)[:28], MTU: 1400}, nil},
		{"v4 from an unregistered port", frames.TooBig{Router: router4, Dst: frames.StackV4,
			Quoted: quote(frames.StackV4, rtpPort+7, frames.Remote4, 0)[:28], MTU: 1400}, nil},
		{"v4 quoting TCP", frames.TooBig{Router: router4, Dst: frames.StackV4,
			Quoted: quote(frames.StackV4, rtpPort, frames.Remote4, header.TCPProtocolNumber)[:28], MTU: 1400}, nil},
		{"v6 quoting another's datagram", frames.TooBig{Router: router6, Dst: frames.StackV6,
			Quoted: quote(frames.PeerV6, rtpPort, frames.Remote6, 0)[:48], MTU: 1280}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, fixtureOptions{})
			var got []tooBigReport
			fx.f.SubscribePacketTooBig(func(local, remote tcpip.Address, port uint16, mtu uint32) {
				got = append(got, tooBigReport{stack.AddrTo(local).String(), stack.AddrTo(remote).String(), port, mtu})
			})
			if v := fx.f.Hook(tc.msg.Build()); v != link.Pass {
				t.Errorf("verdict %v, want pass: netstack must see the frame too", v)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
		})
	}
}
