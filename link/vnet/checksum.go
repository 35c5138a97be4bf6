package vnet

import (
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/csum"
)

// ErrBadCsumOffsets is returned by CompletePartial when the checksum start
// and offset do not fit the frame.
var ErrBadCsumOffsets = errors.New("vnet: checksum start/offset outside the frame")

// udpCsumOffset is where the checksum sits in a UDP header: the one protocol
// where a computed zero is sent as 0xffff (zero means "no checksum").
const udpCsumOffset = 6

// CompletePartial fills in a checksum left to offload (virtio-net
// NEEDS_CSUM, Linux CHECKSUM_PARTIAL): the field at start+offset holds the
// pseudo-header sum, and the checksum is the complement of the sum of every
// byte from start to the end of the frame. This is what the kernel (or a
// NIC) would do; it needs no parsing, so it works for TCP and UDP, IPv4 and
// IPv6, with or without options. The frame must end where the IP packet
// ends (no Ethernet padding), as every frame a TAP or netstack produces does.
func CompletePartial(frame []byte, start, offset int) error {
	if start < 0 || offset < 0 || start+offset+2 > len(frame) {
		return ErrBadCsumOffsets
	}
	sum := ^csum.Checksum(frame[start:], 0)
	if sum == 0 && offset == udpCsumOffset {
		sum = 0xffff
	}
	checksum.Put(frame[start+offset:], sum)
	return nil
}

// CompleteChecksum fills in the TCP or UDP checksum of an Ethernet frame
// whose sender left it to checksum offload without saying where it starts
// (an AF_PACKET socket reports only TP_STATUS_CSUMNOTREADY). It recomputes
// the checksum from scratch, so whatever partial sum the field holds does
// not matter. It reports whether it changed the frame; frames it cannot
// parse (other protocols, fragments, IPv6 extension headers, bad lengths)
// are left alone for netstack to judge.
func CompleteChecksum(frame []byte) bool {
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
		tcp.SetChecksum(^csum.Checksum(seg, xsum))
		return true
	case header.UDPProtocolNumber:
		if len(seg) < header.UDPMinimumSize || int(header.UDP(seg).Length()) != len(seg) {
			return false
		}
		udp := header.UDP(seg)
		udp.SetChecksum(0)
		xsum := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
		sum := ^csum.Checksum(seg, xsum)
		if sum == 0 {
			sum = 0xffff // zero means "no checksum" in UDP
		}
		udp.SetChecksum(sum)
		return true
	}
	return false
}
