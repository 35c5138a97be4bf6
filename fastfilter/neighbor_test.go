package fastfilter_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/stack"
)

// arpFrame builds an ARP packet from sender (spa, sha) about target tpa.
func arpFrame(op header.ARPOp, dstMAC tcpip.LinkAddress, spa netip.Addr, sha tcpip.LinkAddress, tpa netip.Addr) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: sha, DstAddr: dstMAC, Type: header.ARPProtocolNumber})
	a := header.ARP(b[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(op)
	copy(a.HardwareAddressSender(), sha)
	s4, t4 := spa.As4(), tpa.As4()
	copy(a.ProtocolAddressSender(), s4[:])
	copy(a.ProtocolAddressTarget(), t4[:])
	if op == header.ARPReply {
		copy(a.HardwareAddressTarget(), dstMAC)
	}
	return b
}

// gratuitousARP is what `arping -U` (request) or `arping -A` (reply) sends.
func gratuitousARP(op header.ARPOp, ip netip.Addr, mac tcpip.LinkAddress) []byte {
	return arpFrame(op, header.EthernetBroadcastAddress, ip, mac, ip)
}

// naFrame builds a Neighbor Advertisement for target from it, to all nodes.
func naFrame(target netip.Addr, mac tcpip.LinkAddress, solicited, override bool, hopLimit uint8, withTLLA bool) []byte {
	var opts header.NDPOptionsSerializer
	if withTLLA {
		opts = header.NDPOptionsSerializer{header.NDPTargetLinkLayerAddressOption(mac)}
	}
	icmpLen := header.ICMPv6NeighborAdvertMinimumSize + opts.Length()
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+icmpLen)
	dst := netip.MustParseAddr("ff02::1")
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: mac, DstAddr: header.EthernetAddressFromMulticastIPv6Address(stack.AddrFrom(dst)), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{
		PayloadLength:     uint16(icmpLen),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          hopLimit,
		SrcAddr:           stack.AddrFrom(target),
		DstAddr:           stack.AddrFrom(dst),
	})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6NeighborAdvert)
	na := header.NDPNeighborAdvert(icmp.MessageBody())
	na.SetSolicitedFlag(solicited)
	na.SetOverrideFlag(override)
	na.SetTargetAddress(stack.AddrFrom(target))
	na.Options().Serialize(opts)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: stack.AddrFrom(target), Dst: stack.AddrFrom(dst)}))
	return b
}

func unsolicitedNA(target netip.Addr, mac tcpip.LinkAddress, withTLLA bool) []byte {
	return naFrame(target, mac, false, true, header.NDPHopLimit, withTLLA)
}

type neighborUpdate struct {
	IP  string
	MAC tcpip.LinkAddress
}

func TestNeighborUpdates(t *testing.T) {
	newMAC := tcpip.LinkAddress("\x02\x00\x00\x00\x00\x77")
	badChecksum := unsolicitedNA(peerV6, newMAC, true)
	badChecksum[len(badChecksum)-1] ^= 1
	for _, tc := range []struct {
		name  string
		frame []byte
		want  []neighborUpdate
	}{
		{"gratuitous request", gratuitousARP(header.ARPRequest, peerV4, newMAC), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"gratuitous reply", gratuitousARP(header.ARPReply, peerV4, newMAC), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"broadcast reply", arpFrame(header.ARPReply, header.EthernetBroadcastAddress, peerV4, newMAC, ourV4), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"unicast reply about another target", arpFrame(header.ARPReply, ourMAC, peerV4, newMAC, otherV4), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"answer to our request", arpFrame(header.ARPReply, ourMAC, peerV4, newMAC, ourV4), nil},
		{"ordinary request", arpFrame(header.ARPRequest, header.EthernetBroadcastAddress, peerV4, newMAC, ourV4), nil},
		{"address probe", gratuitousARP(header.ARPRequest, netip.IPv4Unspecified(), newMAC), nil},
		{"unsolicited NA with TLLA", unsolicitedNA(peerV6, newMAC, true), []neighborUpdate{{"2001:db8::1", newMAC}}},
		{"unsolicited NA without TLLA", unsolicitedNA(peerV6, newMAC, false), []neighborUpdate{{"2001:db8::1", newMAC}}},
		{"solicited NA", naFrame(peerV6, newMAC, true, true, header.NDPHopLimit, true), nil},
		{"NA without override", naFrame(peerV6, newMAC, false, false, header.NDPHopLimit, true), nil},
		{"NA hop limit 64", naFrame(peerV6, newMAC, false, true, 64, true), nil},
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
	fx.ep.DeliverFrame(gratuitousARP(header.ARPRequest, peerV4, peerMAC))
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
