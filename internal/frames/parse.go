package frames

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Datagram is what ParseUDP read from a frame carrying a UDP datagram.
type Datagram struct {
	DstMAC   tcpip.LinkAddress
	Src, Dst netip.AddrPort
	// TOS is the IPv4 TOS or IPv6 traffic class byte: DSCP << 2 | ECN.
	TOS uint8
	// ID is the IPv4 identification (0 for IPv6).
	ID uint16
	// Payload is part of the frame, not a copy.
	Payload []byte
}

// ParseUDP returns the UDP datagram in frame (untagged; IPv4 without
// options and not a fragment, or IPv6 without extension headers), and
// false for anything else.
func ParseUDP(frame []byte) (Datagram, bool) {
	if len(frame) < header.EthernetMinimumSize {
		return Datagram{}, false
	}
	eth := header.Ethernet(frame)
	rest := frame[header.EthernetMinimumSize:]
	var src, dst tcpip.Address
	var l4 []byte
	var tos uint8
	var id uint16
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(rest)
		if !ip.IsValid(len(rest)) || ip.HeaderLength() != header.IPv4MinimumSize || ip.TransportProtocol() != header.UDPProtocolNumber || ip.More() || ip.FragmentOffset() != 0 {
			return Datagram{}, false
		}
		src, dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		tos, _ = ip.TOS()
		id = ip.ID()
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(rest)
		if !ip.IsValid(len(rest)) || ip.TransportProtocol() != header.UDPProtocolNumber {
			return Datagram{}, false
		}
		src, dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		tos, _ = ip.TOS()
	default:
		return Datagram{}, false
	}
	if len(l4) < header.UDPMinimumSize {
		return Datagram{}, false
	}
	u := header.UDP(l4)
	return Datagram{
		DstMAC:  eth.DestinationAddress(),
		Src:     netip.AddrPortFrom(netipAddr(src), u.SourcePort()),
		Dst:     netip.AddrPortFrom(netipAddr(dst), u.DestinationPort()),
		TOS:     tos,
		ID:      id,
		Payload: u.Payload(),
	}, true
}

func netipAddr(a tcpip.Address) netip.Addr {
	addr, _ := netip.AddrFromSlice(a.AsSlice())
	return addr
}

// Seq writes sequence number n into the first 8 bytes of payload and
// returns payload: a numbered datagram whose arrival a test can check.
func Seq(payload []byte, n uint64) []byte {
	binary.BigEndian.PutUint64(payload, n)
	return payload
}

// SeqOf reads the sequence number Seq wrote.
func SeqOf(payload []byte) uint64 { return binary.BigEndian.Uint64(payload) }

// Pattern returns n bytes of a pattern that is easy to recognise in a
// capture.
func Pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	return p
}
