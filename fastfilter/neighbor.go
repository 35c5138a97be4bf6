package fastfilter

import (
	"bytes"

	"gvisor.dev/gvisor/pkg/tcpip"
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
	if fn == nil {
		return
	}
	f.regMu.Lock()
	defer f.regMu.Unlock()
	var subs []neighborFunc
	if old := f.subs.Load(); old != nil {
		subs = append(subs, *old...)
	}
	subs = append(subs, fn)
	f.subs.Store(&subs)
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
