package fastfilter

import (
	"bytes"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

type neighborFunc = func(ip tcpip.Address, mac tcpip.LinkAddress)

// SubscribeNeighborUpdates makes the filter call fn with the IP address and
// the announced MAC of every neighbour announcement it sees:
//
//   - a gratuitous ARP: a request or reply whose sender IP equals its target
//     IP (arping -U, arping -A, keepalived), except probes from 0.0.0.0;
//   - an unsolicited ARP reply: one that is broadcast, or whose target IP is
//     not one of the stack's addresses (a reply unicast to us about our own
//     address answers netstack's request; netstack learns from it);
//   - an IPv6 unsolicited Neighbor Advertisement (Solicited flag clear) with
//     the Override flag set, hop limit 255 and a valid checksum. mac is its
//     target link-layer address option, else the frame's source MAC, else
//     empty.
//
// The frame still goes on to netstack. fn runs on the receive goroutine and
// must not block. It is meant for invalidation (the policy ARP table): an
// announcement is unauthenticated, so it must never install a MAC.
// Subscriptions last as long as the filter.
func (f *Filter) SubscribeNeighborUpdates(fn func(ip tcpip.Address, mac tcpip.LinkAddress)) {
	if fn != nil {
		subscribe(f, &f.subs, fn)
	}
}

// subscribe adds fn to the subscribers in p: a new slice, so that the
// receive path reads them without a lock.
func subscribe[T any](f *Filter, p *atomic.Pointer[[]T], fn T) {
	f.regMu.Lock()
	defer f.regMu.Unlock()
	var subs []T
	if old := p.Load(); old != nil {
		subs = append(subs, *old...)
	}
	subs = append(subs, fn)
	p.Store(&subs)
}

func (f *Filter) notifyNeighbor(ip tcpip.Address, mac tcpip.LinkAddress) {
	if subs := f.subs.Load(); subs != nil {
		for _, fn := range *subs {
			fn(ip, mac)
		}
	}
}

// checkARP reports a gratuitous or unsolicited ARP packet. eth is the frame
// or nil.
func (f *Filter) checkARP(pkt, eth []byte, s *snapshot) {
	if f.subs.Load() == nil {
		return
	}
	arp := header.ARP(pkt)
	if !arp.IsValid() {
		return
	}
	spa, tpa := arp.ProtocolAddressSender(), arp.ProtocolAddressTarget()
	if [header.IPv4AddressSize]byte(spa) == ([header.IPv4AddressSize]byte{}) {
		return // an address probe (RFC 5227) announces nothing
	}
	gratuitous := bytes.Equal(spa, tpa)
	switch arp.Op() {
	case header.ARPRequest:
		if !gratuitous {
			return
		}
	case header.ARPReply:
		if !gratuitous && eth != nil && eth[0]&1 == 0 && s.hasV4(tpa) {
			return // unicast answer to our own request
		}
	default:
		return
	}
	f.notifyNeighbor(tcpip.AddrFrom4Slice(spa), tcpip.LinkAddress(arp.HardwareAddressSender()))
}

// checkNA reports an unsolicited Neighbor Advertisement with the Override
// flag. pkt is the IPv6 packet, eth the frame or nil.
func (f *Filter) checkNA(pkt, eth []byte, offload bool) {
	if f.subs.Load() == nil {
		return
	}
	ip := header.IPv6(pkt)
	plen := int(ip.PayloadLength())
	if ip.HopLimit() != header.NDPHopLimit || plen < header.ICMPv6NeighborAdvertMinimumSize || header.IPv6MinimumSize+plen > len(pkt) {
		return
	}
	icmp := header.ICMPv6(pkt[header.IPv6MinimumSize : header.IPv6MinimumSize+plen])
	if icmp.Type() != header.ICMPv6NeighborAdvert || icmp.Code() != 0 {
		return
	}
	if !offload {
		want := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
			Header: icmp, // the whole message; the checksum field is skipped
			Src:    ip.SourceAddress(),
			Dst:    ip.DestinationAddress(),
		})
		if want != icmp.Checksum() {
			return
		}
	}
	na := header.NDPNeighborAdvert(icmp.MessageBody())
	if na.SolicitedFlag() || !na.OverrideFlag() {
		return
	}
	target := na.TargetAddress()
	if header.IsV6MulticastAddress(target) {
		return
	}
	var mac tcpip.LinkAddress
	if it, err := na.Options().Iter(true); err == nil {
		for {
			opt, done, err := it.Next()
			if err != nil || done {
				break
			}
			if tll, ok := opt.(header.NDPTargetLinkLayerAddressOption); ok {
				mac = tll.EthernetAddress()
			}
		}
	}
	if mac == "" && eth != nil {
		mac = tcpip.LinkAddress(eth[header.EthernetAddressSize : 2*header.EthernetAddressSize])
	}
	f.notifyNeighbor(target, mac)
}

type tooBigFunc = func(local, remote tcpip.Address, port uint16, mtu uint32)

// SubscribePacketTooBig makes the filter call fn for every ICMPv4
// "fragmentation needed" (type 3 code 4) and ICMPv6 "packet too big" it
// sees that quotes a UDP datagram sent from a registered port: local and
// port are the quoted datagram's source (one of the stack's addresses),
// remote its destination, mtu the largest IP packet the reporting router's
// next link takes. Before calling fn it checks what a forged or corrupt
// error would get wrong: the outer destination is ours, the ICMP checksum
// (unless the link verified it), a quoted IP header of the right version with
// a UDP header behind it, our address as its source and a registered port.
// The MTU itself is for fn to judge (policyarp.Table.HandlePacketTooBig
// ignores what is below the protocol's minimum).
//
// The frame still goes on to netstack, untouched. fn runs on the receive
// goroutine and must not block or retain anything. Subscriptions last as
// long as the filter.
func (f *Filter) SubscribePacketTooBig(fn func(local, remote tcpip.Address, port uint16, mtu uint32)) {
	if fn != nil {
		subscribe(f, &f.tooBig, fn)
	}
}

func (f *Filter) notifyTooBig(local, remote tcpip.Address, port uint16, mtu uint32) {
	for _, fn := range *f.tooBig.Load() {
		fn(local, remote, port, mtu)
	}
}

// checkICMPv4 reports a "fragmentation needed" quoting one of our UDP
// datagrams. pkt is the IPv4 packet.
func (f *Filter) checkICMPv4(pkt []byte, s *snapshot, offload bool) {
	if f.tooBig.Load() == nil {
		return
	}
	ip := header.IPv4(pkt)
	hlen, tlen := int(ip.HeaderLength()), int(ip.TotalLength())
	if hlen < header.IPv4MinimumSize || tlen > len(pkt) ||
		tlen < hlen+header.ICMPv4MinimumSize+header.IPv4MinimumSize+header.UDPMinimumSize ||
		ip.More() || ip.FragmentOffset() != 0 || !s.hasV4(ip.DestinationAddressSlice()) {
		return
	}
	icmp := header.ICMPv4(pkt[hlen:tlen])
	if icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4FragmentationNeeded {
		return
	}
	if !offload && (wordSum(pkt[:hlen], 0) != 0xffff || checksum.Checksum(icmp, 0) != 0xffff) {
		return
	}
	inner := header.IPv4(icmp.Payload())
	if header.IPVersion(inner) != header.IPv4Version || inner.Protocol() != uint8(header.UDPProtocolNumber) {
		return
	}
	ihl := int(inner.HeaderLength())
	if ihl < header.IPv4MinimumSize || len(inner) < ihl+header.UDPMinimumSize || inner.FragmentOffset() != 0 {
		return
	}
	src := inner.SourceAddressSlice()
	port := header.UDP(inner[ihl:]).SourcePort()
	if !s.hasV4(src) || f.lookup(port) == nil {
		return
	}
	f.notifyTooBig(tcpip.AddrFrom4Slice(src), tcpip.AddrFrom4Slice(inner.DestinationAddressSlice()), port, uint32(icmp.MTU()))
}

// checkICMPv6 looks at an ICMPv6 message for the neighbour and path MTU
// subscribers. pkt is the IPv6 packet, eth the frame or nil.
func (f *Filter) checkICMPv6(pkt, eth []byte, s *snapshot, offload bool) {
	if len(pkt) < header.IPv6MinimumSize+header.ICMPv6MinimumSize {
		return
	}
	switch header.ICMPv6(pkt[header.IPv6MinimumSize:]).Type() {
	case header.ICMPv6NeighborAdvert:
		f.checkNA(pkt, eth, offload)
	case header.ICMPv6PacketTooBig:
		f.checkTooBig6(pkt, s, offload)
	}
}

// checkTooBig6 reports a "packet too big" quoting one of our UDP
// datagrams. pkt is the IPv6 packet.
func (f *Filter) checkTooBig6(pkt []byte, s *snapshot, offload bool) {
	if f.tooBig.Load() == nil {
		return
	}
	ip := header.IPv6(pkt)
	plen := int(ip.PayloadLength())
	if header.IPv6MinimumSize+plen > len(pkt) || plen < header.ICMPv6PayloadOffset+header.IPv6MinimumSize+header.UDPMinimumSize ||
		!s.hasV6(ip.DestinationAddressSlice()) {
		return
	}
	icmp := header.ICMPv6(pkt[header.IPv6MinimumSize : header.IPv6MinimumSize+plen])
	if icmp.Code() != 0 {
		return
	}
	if !offload && header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()}) != icmp.Checksum() {
		return
	}
	inner := header.IPv6(icmp.Payload())
	if header.IPVersion(inner) != header.IPv6Version || inner.NextHeader() != uint8(header.UDPProtocolNumber) {
		return // extension headers: netstack's business
	}
	src := inner.SourceAddressSlice()
	port := header.UDP(inner[header.IPv6MinimumSize:]).SourcePort()
	if !s.hasV6(src) || f.lookup(port) == nil {
		return
	}
	f.notifyTooBig(tcpip.AddrFrom16Slice(src), tcpip.AddrFrom16Slice(inner.DestinationAddressSlice()), port, icmp.MTU())
}
