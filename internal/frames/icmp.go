package frames

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TooBig describes an Ethernet frame carrying a router's path MTU report: an
// ICMPv4 "fragmentation needed" (type 3 code 4) or, when Quoted is an IPv6
// packet, an ICMPv6 "packet too big", quoting Quoted (the start of the
// packet that did not fit: its IP header and at least 8 bytes) and telling
// MTU. It goes from Router (at SrcMAC, default PeerMAC) to Dst (at DstMAC,
// default StackMAC), with a valid checksum unless BadChecksum.
type TooBig struct {
	Router, Dst    netip.Addr
	SrcMAC, DstMAC tcpip.LinkAddress
	Quoted         []byte
	MTU            uint32
	BadChecksum    bool
}

// Build returns the frame.
func (b TooBig) Build() []byte {
	src, dst := b.SrcMAC, b.DstMAC
	if src == "" {
		src = PeerMAC
	}
	if dst == "" {
		dst = StackMAC
	}
	v6 := header.IPVersion(b.Quoted) == header.IPv6Version
	ipLen, proto := header.IPv4MinimumSize, header.IPv4ProtocolNumber
	if v6 {
		ipLen, proto = header.IPv6MinimumSize, header.IPv6ProtocolNumber
	}
	icmpLen := header.ICMPv4MinimumSize + len(b.Quoted)
	frame := make([]byte, header.EthernetMinimumSize+ipLen+icmpLen)
	header.Ethernet(frame).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: dst, Type: proto})
	ip := frame[header.EthernetMinimumSize:]
	icmpBytes := ip[ipLen:]
	copy(icmpBytes[header.ICMPv4MinimumSize:], b.Quoted)
	if v6 {
		header.IPv6(ip).Encode(&header.IPv6Fields{
			PayloadLength: uint16(icmpLen), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 64,
			SrcAddr: tcpipAddr(b.Router), DstAddr: tcpipAddr(b.Dst),
		})
		icmp := header.ICMPv6(icmpBytes)
		icmp.SetType(header.ICMPv6PacketTooBig)
		icmp.SetMTU(b.MTU)
		icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: tcpipAddr(b.Router), Dst: tcpipAddr(b.Dst)}))
	} else {
		h := header.IPv4(ip)
		h.Encode(&header.IPv4Fields{
			TotalLength: uint16(ipLen + icmpLen), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
			SrcAddr: tcpipAddr(b.Router), DstAddr: tcpipAddr(b.Dst),
		})
		h.SetChecksum(^h.CalculateChecksum())
		icmp := header.ICMPv4(icmpBytes)
		icmp.SetType(header.ICMPv4DstUnreachable)
		icmp.SetCode(header.ICMPv4FragmentationNeeded)
		icmp.SetMTU(uint16(b.MTU))
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	}
	if b.BadChecksum {
		icmpBytes[len(icmpBytes)-1] ^= 1
	}
	return frame
}

// NS describes a Neighbor Solicitation from Src (at SrcMAC, the source
// link-layer address option too) for Target, unicast to Target at DstMAC,
// as a host confirming a neighbour sends it. A forged Src/SrcMAC is the
// NDP twin of a forged ARP request.
type NS struct {
	Src, Target    netip.Addr
	SrcMAC, DstMAC tcpip.LinkAddress
}

// Build returns the frame.
func (n NS) Build() []byte {
	opts := header.NDPOptionsSerializer{header.NDPSourceLinkLayerAddressOption(n.SrcMAC)}
	icmpLen := header.ICMPv6NeighborSolicitMinimumSize + opts.Length()
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+icmpLen)
	src, dst := tcpipAddr(n.Src), tcpipAddr(n.Target)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: n.SrcMAC, DstAddr: n.DstMAC, Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{
		PayloadLength: uint16(icmpLen), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: header.NDPHopLimit,
		SrcAddr: src, DstAddr: dst,
	})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6NeighborSolicit)
	ns := header.NDPNeighborSolicit(icmp.MessageBody())
	ns.SetTargetAddress(dst)
	ns.Options().Serialize(opts)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: src, Dst: dst}))
	return b
}
