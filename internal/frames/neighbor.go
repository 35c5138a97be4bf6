package frames

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// ARP describes an ARP packet (IPv4 over Ethernet) from SenderMAC,
// SenderIP about TargetIP, in a frame to DstMAC.
type ARP struct {
	Op                 header.ARPOp
	DstMAC             tcpip.LinkAddress
	SenderMAC          tcpip.LinkAddress
	SenderIP, TargetIP netip.Addr
}

// Build returns the frame. A reply's target hardware address is DstMAC; a
// request's is zero.
func (a ARP) Build() []byte {
	b := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: a.SenderMAC, DstAddr: a.DstMAC, Type: header.ARPProtocolNumber})
	arp := header.ARP(b[header.EthernetMinimumSize:])
	arp.SetIPv4OverEthernet()
	arp.SetOp(a.Op)
	copy(arp.HardwareAddressSender(), a.SenderMAC)
	s4, t4 := a.SenderIP.As4(), a.TargetIP.As4()
	copy(arp.ProtocolAddressSender(), s4[:])
	copy(arp.ProtocolAddressTarget(), t4[:])
	if a.Op == header.ARPReply {
		copy(arp.HardwareAddressTarget(), a.DstMAC)
	}
	return b
}

// GratuitousARP returns the broadcast ARP request (what `arping -U` sends)
// or reply (`arping -A`) in which ip announces that it is at mac.
func GratuitousARP(op header.ARPOp, ip netip.Addr, mac tcpip.LinkAddress) []byte {
	return ARP{Op: op, DstMAC: header.EthernetBroadcastAddress, SenderMAC: mac, SenderIP: ip, TargetIP: ip}.Build()
}

// NA describes a Neighbor Advertisement from Target, at MAC, to all nodes.
type NA struct {
	Target    netip.Addr
	MAC       tcpip.LinkAddress
	Solicited bool
	Override  bool
	// HopLimit is the IPv6 hop limit; NDP requires 255 (header.NDPHopLimit).
	HopLimit uint8
	// TLLA adds the target link-layer address option (MAC).
	TLLA bool
}

// Build returns the frame.
func (n NA) Build() []byte {
	var opts header.NDPOptionsSerializer
	if n.TLLA {
		opts = header.NDPOptionsSerializer{header.NDPTargetLinkLayerAddressOption(n.MAC)}
	}
	icmpLen := header.ICMPv6NeighborAdvertMinimumSize + opts.Length()
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+icmpLen)
	src, dst := tcpipAddr(n.Target), header.IPv6AllNodesMulticastAddress
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: n.MAC, DstAddr: header.EthernetAddressFromMulticastIPv6Address(dst), Type: header.IPv6ProtocolNumber,
	})
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{
		PayloadLength:     uint16(icmpLen),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          n.HopLimit,
		SrcAddr:           src,
		DstAddr:           dst,
	})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6NeighborAdvert)
	na := header.NDPNeighborAdvert(icmp.MessageBody())
	na.SetSolicitedFlag(n.Solicited)
	na.SetOverrideFlag(n.Override)
	na.SetTargetAddress(src)
	na.Options().Serialize(opts)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: src, Dst: dst}))
	return b
}

// UnsolicitedNA returns the Neighbor Advertisement (override set, with the
// target link-layer address) in which ip announces that it is at mac.
func UnsolicitedNA(ip netip.Addr, mac tcpip.LinkAddress) []byte {
	return NA{Target: ip, MAC: mac, Override: true, HopLimit: header.NDPHopLimit, TLLA: true}.Build()
}

// IsARPRequest reports whether frame is an ARP request for target.
func IsARPRequest(frame []byte, target netip.Addr) bool {
	if len(frame) < header.EthernetMinimumSize+header.ARPSize || header.Ethernet(frame).Type() != header.ARPProtocolNumber {
		return false
	}
	arp := header.ARP(frame[header.EthernetMinimumSize:])
	t4 := target.As4()
	return arp.IsValid() && arp.Op() == header.ARPRequest && string(arp.ProtocolAddressTarget()) == string(t4[:])
}

// IsNeighborSolicitation reports whether frame is a Neighbor Solicitation
// for target.
func IsNeighborSolicitation(frame []byte, target netip.Addr) bool {
	if len(frame) < header.EthernetMinimumSize+header.IPv6MinimumSize+header.ICMPv6NeighborSolicitMinimumSize ||
		header.Ethernet(frame).Type() != header.IPv6ProtocolNumber {
		return false
	}
	ip := header.IPv6(frame[header.EthernetMinimumSize:])
	if ip.TransportProtocol() != header.ICMPv6ProtocolNumber {
		return false
	}
	icmp := header.ICMPv6(ip.Payload())
	return icmp.Type() == header.ICMPv6NeighborSolicit &&
		header.NDPNeighborSolicit(icmp.MessageBody()).TargetAddress() == tcpipAddr(target)
}
