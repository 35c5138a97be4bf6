package udpfast

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/csum"
)

const (
	ethLen        = header.EthernetMinimumSize
	maxHeaderLen  = ethLen + header.IPv6MinimumSize + header.UDPMinimumSize
	ipv4HeaderLen = ethLen + header.IPv4MinimumSize + header.UDPMinimumSize
	ipv6HeaderLen = maxHeaderLen
)

// template is the Ethernet + IP + UDP header of one (source, destination)
// pair with every static field filled in, plus the partial checksums of those
// fields, so that a datagram costs a header copy, a payload copy, a few
// stores and one pass of the checksum over the payload.
type template struct {
	hdr [maxHeaderLen]byte
	n   int // header length: ipv4HeaderLen or ipv6HeaderLen
	v6  bool
	// ipSum is the one's complement sum of the IPv4 header with total
	// length, ID and checksum zero: the per-datagram checksum is
	// ^(ipSum + total length [+ ID]), an incremental update (RFC 1624) from
	// a header whose variable fields are zero.
	ipSum uint16
	// udpSum is the sum of the pseudo-header and the UDP header with both
	// lengths and the checksum zero (addresses, protocol and ports).
	udpSum uint16
	// pseudoSum is the pseudo-header's sum with the length zero: what a
	// partial checksum starts from (trainHeader).
	pseudoSum uint16
}

type templateFields struct {
	srcMAC, dstMAC tcpip.LinkAddress
	src, dst       tcpip.Address
	srcPort        uint16
	dstPort        uint16
	ttl, tos       uint8
	df             bool // IPv4 don't-fragment
}

// build fills t for f. Addresses must be of one family.
func (t *template) build(f *templateFields) {
	*t = template{}
	var udp header.UDP
	if f.dst.Len() == header.IPv6AddressSize {
		t.v6, t.n = true, ipv6HeaderLen
		header.Ethernet(t.hdr[:]).Encode(&header.EthernetFields{SrcAddr: f.srcMAC, DstAddr: f.dstMAC, Type: header.IPv6ProtocolNumber})
		header.IPv6(t.hdr[ethLen:]).Encode(&header.IPv6Fields{
			TrafficClass:      f.tos,
			TransportProtocol: header.UDPProtocolNumber,
			HopLimit:          f.ttl,
			SrcAddr:           f.src,
			DstAddr:           f.dst,
		})
		udp = header.UDP(t.hdr[ethLen+header.IPv6MinimumSize:])
	} else {
		t.n = ipv4HeaderLen
		header.Ethernet(t.hdr[:]).Encode(&header.EthernetFields{SrcAddr: f.srcMAC, DstAddr: f.dstMAC, Type: header.IPv4ProtocolNumber})
		fields := header.IPv4Fields{
			TOS:      f.tos,
			TTL:      f.ttl,
			Protocol: uint8(header.UDPProtocolNumber),
			SrcAddr:  f.src,
			DstAddr:  f.dst,
		}
		if f.df {
			fields.Flags = header.IPv4FlagDontFragment
		}
		ip := header.IPv4(t.hdr[ethLen:])
		ip.Encode(&fields)
		t.ipSum = ip.CalculateChecksum()
		udp = header.UDP(t.hdr[ethLen+header.IPv4MinimumSize:])
	}
	udp.Encode(&header.UDPFields{SrcPort: f.srcPort, DstPort: f.dstPort})
	t.pseudoSum = header.PseudoHeaderChecksum(header.UDPProtocolNumber, f.src, f.dst, 0)
	t.udpSum = checksum.Combine(t.pseudoSum, udp.CalculateChecksum(0))
}

// setDstMAC changes the destination MAC; nothing else depends on it.
func (t *template) setDstMAC(mac tcpip.LinkAddress) {
	copy(t.hdr[:header.EthernetAddressSize], mac)
}

// setLengths writes the IP and UDP lengths of a datagram (or train) of
// payloadLen bytes into hdr, a copy of t.hdr, and the IPv4 header checksum
// with identification id; it returns the UDP length.
func (t *template) setLengths(hdr []byte, payloadLen int, id uint16) uint16 {
	udpLen := uint16(header.UDPMinimumSize + payloadLen)
	if t.v6 {
		header.IPv6(hdr[ethLen:]).SetPayloadLength(udpLen)
	} else {
		ip := header.IPv4(hdr[ethLen:])
		total := udpLen + header.IPv4MinimumSize
		ip.SetTotalLength(total)
		sum := checksum.Combine(t.ipSum, total)
		if id != 0 {
			ip.SetID(id)
			sum = checksum.Combine(sum, id)
		}
		ip.SetChecksum(^sum)
	}
	header.UDP(hdr[t.n-header.UDPMinimumSize:]).SetLength(udpLen)
	return udpLen
}

// maxTrainPayload is the most payload one UDP train may carry: the IPv4
// total length (IPv6 payload length) is 16 bits.
const maxTrainPayload = 65535 - header.IPv4MinimumSize - header.UDPMinimumSize

// trainHeader writes into buf (t.n bytes) the headers of a UDP train of
// payloadLen bytes for link.UDPSegmenter: lengths for the whole train and
// the UDP checksum left partial, the pseudo-header's sum over the whole
// length, which the kernel adjusts for each datagram it cuts and completes
// over that datagram's bytes (Linux __udp_gso_segment). id is the first
// datagram's IPv4 identification; the kernel counts up from it.
func (t *template) trainHeader(buf []byte, payloadLen int, id uint16) []byte {
	hdr := buf[:t.n]
	copy(hdr, t.hdr[:t.n])
	udpLen := t.setLengths(hdr, payloadLen, id)
	header.UDP(hdr[t.n-header.UDPMinimumSize:]).SetChecksum(checksum.Combine(t.pseudoSum, udpLen))
	return hdr
}

// fill writes the frame for payload into buf (which must hold t.n +
// len(payload) bytes) and returns it. id is the IPv4 identification (0
// when the don't-fragment bit is set, as netstack does).
func (t *template) fill(buf, payload []byte, id uint16) []byte {
	n := t.n
	frame := buf[:n+len(payload)]
	copy(frame, t.hdr[:n])
	copy(frame[n:], payload)
	udpLen := t.setLengths(frame, len(payload), id)
	udp := header.UDP(frame[n-header.UDPMinimumSize:])
	// The length counts twice: once in the pseudo-header, once in the UDP
	// header. The payload is summed from the caller's slice, which is
	// likelier to be in cache than the copy's destination.
	sum := csum.Checksum(payload, checksum.Combine(t.udpSum, checksum.Combine(udpLen, udpLen)))
	// RFC 768: a computed zero is sent as all ones (zero means "none").
	if sum != 0xffff {
		sum = ^sum
	}
	udp.SetChecksum(sum)
	return frame
}
