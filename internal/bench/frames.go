package bench

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/stack"
)

// udpFrame builds the Ethernet frame of one UDP datagram from src to dst,
// both checksums filled in, as a peer on the link would send it.
func udpFrame(srcMAC, dstMAC tcpip.LinkAddress, src, dst netip.AddrPort, payload []byte) []byte {
	v6 := dst.Addr().Is6()
	ipLen, proto := header.IPv4MinimumSize, header.IPv4ProtocolNumber
	if v6 {
		ipLen, proto = header.IPv6MinimumSize, header.IPv6ProtocolNumber
	}
	udpLen := header.UDPMinimumSize + len(payload)
	b := make([]byte, header.EthernetMinimumSize+ipLen+udpLen)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: srcMAC, DstAddr: dstMAC, Type: proto})
	ipb := b[header.EthernetMinimumSize:]
	s, d := stack.AddrFrom(src.Addr()), stack.AddrFrom(dst.Addr())
	if v6 {
		header.IPv6(ipb).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(udpLen),
			TransportProtocol: header.UDPProtocolNumber,
			HopLimit:          64,
			SrcAddr:           s,
			DstAddr:           d,
		})
	} else {
		ip := header.IPv4(ipb)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(ipLen + udpLen),
			TTL:         64,
			Protocol:    uint8(header.UDPProtocolNumber),
			SrcAddr:     s,
			DstAddr:     d,
			Flags:       header.IPv4FlagDontFragment,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	u := header.UDP(ipb[ipLen:])
	u.Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(udpLen)})
	copy(u.Payload(), payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, uint16(udpLen))
	xsum = checksum.Checksum(payload, xsum)
	c := ^u.CalculateChecksum(xsum)
	if c == 0 {
		c = 0xffff
	}
	u.SetChecksum(c)
	return b
}

// testPayload returns size bytes of a recognisable pattern.
func testPayload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	return p
}
