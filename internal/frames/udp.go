package frames

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// UDP describes an Ethernet frame carrying one UDP datagram from Src to Dst
// (IPv6 if Dst is). The zero values of the other fields give a plain, valid
// frame from PeerMAC to StackMAC, TTL 64, both checksums filled in; set them
// for the unusual frames a receive path must sort out.
type UDP struct {
	Src, Dst       netip.AddrPort
	Payload        []byte
	SrcMAC, DstMAC tcpip.LinkAddress // default PeerMAC, StackMAC

	// Tagged adds an 802.1Q tag with priority 5 (voice) and VLAN ID VID.
	Tagged bool
	VID    uint16

	// IPv4 header fields: identification, flags (header.IPv4FlagDontFragment,
	// header.IPv4FlagMoreFragments), fragment offset in bytes (a multiple
	// of 8), and options (a multiple of 4 bytes, copied as they are).
	ID             uint16
	Flags          uint8
	FragmentOffset uint16
	IPOptions      []byte

	// Extension, for IPv6, puts an 8-byte extension header of kind
	// ExtensionID before the UDP header: zeros but for the next header, and
	// the M flag in a fragment header.
	Extension   bool
	ExtensionID header.IPv6ExtensionHeaderIdentifier

	// Protocol, when set, replaces UDP in the IP header (the UDP header
	// and its checksum are written all the same).
	Protocol tcpip.TransportProtocolNumber
	// NoUDPChecksum leaves the UDP checksum 0 ("none", legal for IPv4 only).
	NoUDPChecksum bool
	// Padding is Ethernet padding after the IP packet, in bytes.
	Padding int

	// MutateUDP and then MutateIP change the built frame's UDP header and
	// IP packet; the IPv4 header checksum is computed again afterwards
	// unless StaleIPv4Checksum is set.
	MutateUDP         func(u header.UDP)
	MutateIP          func(ip []byte)
	StaleIPv4Checksum bool
}

// vlanHeaderSize is what an 802.1Q tag adds to the Ethernet header.
const vlanHeaderSize = 4

// v6ExtensionSize is the length of the IPv6 extension header UDP.Extension
// adds.
const v6ExtensionSize = 8

func (u UDP) v6() bool { return u.Dst.Addr().Is6() }

func (u UDP) ethLen() int {
	if u.Tagged {
		return header.EthernetMinimumSize + vlanHeaderSize
	}
	return header.EthernetMinimumSize
}

func (u UDP) ipHeaderLen() int {
	switch {
	case !u.v6():
		return header.IPv4MinimumSize + len(u.IPOptions)
	case u.Extension:
		return header.IPv6MinimumSize + v6ExtensionSize
	default:
		return header.IPv6MinimumSize
	}
}

// Len is the length of the frame.
func (u UDP) Len() int {
	return u.ethLen() + u.ipHeaderLen() + header.UDPMinimumSize + len(u.Payload) + u.Padding
}

// Build returns the frame.
func (u UDP) Build() []byte {
	b := make([]byte, u.Len())
	u.MarshalTo(b)
	return b
}

// MarshalTo writes the frame into b, which must hold Len bytes, and
// returns Len.
func (u UDP) MarshalTo(b []byte) int {
	b = b[:u.Len()]
	clear(b)
	ethLen, ipLen := u.ethLen(), u.ipHeaderLen()
	udpLen := header.UDPMinimumSize + len(u.Payload)
	netProto := header.IPv4ProtocolNumber
	if u.v6() {
		netProto = header.IPv6ProtocolNumber
	}
	srcMAC, dstMAC := u.SrcMAC, u.DstMAC
	if srcMAC == "" {
		srcMAC = PeerMAC
	}
	if dstMAC == "" {
		dstMAC = StackMAC
	}
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: srcMAC, DstAddr: dstMAC, Type: netProto})
	if u.Tagged {
		binary.BigEndian.PutUint16(b[12:], 0x8100)
		binary.BigEndian.PutUint16(b[14:], 5<<13|u.VID)
		binary.BigEndian.PutUint16(b[16:], uint16(netProto))
	}

	ip := b[ethLen : ethLen+ipLen+udpLen]
	src, dst := tcpipAddr(u.Src.Addr()), tcpipAddr(u.Dst.Addr())
	proto := u.Protocol
	if proto == 0 {
		proto = header.UDPProtocolNumber
	}
	if u.v6() {
		u.encodeIPv6(ip, proto, udpLen)
	} else {
		u.encodeIPv4(ip, proto, udpLen)
	}

	udp := header.UDP(ip[ipLen:])
	udp.Encode(&header.UDPFields{SrcPort: u.Src.Port(), DstPort: u.Dst.Port(), Length: uint16(udpLen)})
	copy(udp.Payload(), u.Payload)
	if !u.NoUDPChecksum {
		xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(udpLen))
		xsum = checksum.Checksum(u.Payload, xsum)
		c := ^udp.CalculateChecksum(xsum)
		if c == 0 {
			c = 0xffff
		}
		udp.SetChecksum(c)
	}
	if u.MutateUDP != nil {
		u.MutateUDP(udp)
	}
	if u.MutateIP != nil {
		u.MutateIP(ip)
		if !u.v6() && !u.StaleIPv4Checksum {
			setIPv4Checksum(header.IPv4(ip))
		}
	}
	return len(b)
}

func (u UDP) encodeIPv4(b []byte, proto tcpip.TransportProtocolNumber, udpLen int) {
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength:    uint16(u.ipHeaderLen() + udpLen),
		ID:             u.ID,
		Flags:          u.Flags,
		FragmentOffset: u.FragmentOffset,
		TTL:            64,
		Protocol:       uint8(proto),
		SrcAddr:        tcpipAddr(u.Src.Addr()),
		DstAddr:        tcpipAddr(u.Dst.Addr()),
	})
	if len(u.IPOptions) > 0 {
		ip.SetHeaderLength(uint8(u.ipHeaderLen()))
		copy(b[header.IPv4MinimumSize:], u.IPOptions)
	}
	setIPv4Checksum(ip)
}

func (u UDP) encodeIPv6(b []byte, proto tcpip.TransportProtocolNumber, udpLen int) {
	next := proto
	if u.Extension {
		next = tcpip.TransportProtocolNumber(u.ExtensionID)
		ext := b[header.IPv6MinimumSize:]
		ext[0] = uint8(proto) // the rest stays zero: Pad1 options, fragment offset 0
		if u.ExtensionID == header.IPv6FragmentExtHdrIdentifier {
			binary.BigEndian.PutUint16(ext[2:], 1) // M: more fragments follow
		}
	}
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(u.ipHeaderLen() - header.IPv6MinimumSize + udpLen),
		TransportProtocol: next,
		HopLimit:          64,
		SrcAddr:           tcpipAddr(u.Src.Addr()),
		DstAddr:           tcpipAddr(u.Dst.Addr()),
	})
}

func setIPv4Checksum(ip header.IPv4) {
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
}
