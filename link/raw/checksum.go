package raw

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// completeChecksum fills in the TCP or UDP checksum of an Ethernet frame
// whose sender left it to checksum offload (the kernel reports
// TP_STATUS_CSUMNOTREADY for such frames). It recomputes the checksum from
// scratch, so whatever partial sum the field holds does not matter. It
// reports whether it changed the frame; frames it cannot parse (other
// protocols, fragments, IPv6 extension headers, bad lengths) are left alone
// for netstack to judge.
func completeChecksum(frame []byte) bool {
	if len(frame) < header.EthernetMinimumSize {
		return false
	}
	eth := header.Ethernet(frame)
	l3 := frame[header.EthernetMinimumSize:]
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		if len(l3) < header.IPv4MinimumSize {
			return false
		}
		ip := header.IPv4(l3)
		hlen := int(ip.HeaderLength())
		total := int(ip.TotalLength())
		if hlen < header.IPv4MinimumSize || total < hlen || total > len(l3) || ip.More() || ip.FragmentOffset() != 0 {
			return false
		}
		return completeTransport(ip.TransportProtocol(), ip.SourceAddress(), ip.DestinationAddress(), l3[hlen:total])
	case header.IPv6ProtocolNumber:
		if len(l3) < header.IPv6MinimumSize {
			return false
		}
		ip := header.IPv6(l3)
		end := header.IPv6MinimumSize + int(ip.PayloadLength())
		if end > len(l3) {
			return false
		}
		return completeTransport(ip.TransportProtocol(), ip.SourceAddress(), ip.DestinationAddress(), l3[header.IPv6MinimumSize:end])
	}
	return false
}

func completeTransport(proto tcpip.TransportProtocolNumber, src, dst tcpip.Address, seg []byte) bool {
	switch proto {
	case header.TCPProtocolNumber:
		if len(seg) < header.TCPMinimumSize {
			return false
		}
		tcp := header.TCP(seg)
		tcp.SetChecksum(0)
		xsum := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
		tcp.SetChecksum(^checksum.Checksum(seg, xsum))
		return true
	case header.UDPProtocolNumber:
		if len(seg) < header.UDPMinimumSize || int(header.UDP(seg).Length()) != len(seg) {
			return false
		}
		udp := header.UDP(seg)
		udp.SetChecksum(0)
		xsum := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
		sum := ^checksum.Checksum(seg, xsum)
		if sum == 0 {
			sum = 0xffff // zero means "no checksum" in UDP
		}
		udp.SetChecksum(sum)
		return true
	}
	return false
}
