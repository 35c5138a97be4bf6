package fastfilter

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/csum"
	"github.com/mediastack/mediastack/link"
)

const (
	etherTypeVLAN  = 0x8100 // IEEE 802.1Q tag
	vlanHeaderSize = 4
	vlanIDMask     = 0x0fff
)

// Hook is the link.FrameHook of the filter: install it with
// ep.SetFrameHook(f.Hook) on a mediastack link (tap, raw, sim). It returns
// link.Handled for datagrams it delivered to a registered port or dropped as
// unsound, and link.Pass for everything else. It does not retain frame.
func (f *Filter) Hook(frame []byte) link.Verdict {
	if !f.rxSeen.Load() {
		f.noteFrame()
	}
	s := f.snap.Load()
	return f.classifyEthernet(frame, s, s.rxOffload)
}

// classifyEthernet classifies a whole Ethernet frame (destination MAC
// first). offload tells whether the link verified the checksums.
func (f *Filter) classifyEthernet(frame []byte, s *snapshot, offload bool) link.Verdict {
	if len(frame) < header.EthernetMinimumSize {
		return f.pass(nil, passMalformed)
	}
	dst := frame[:header.EthernetAddressSize]
	// Unicast to another MAC: no NIC takes it (ethlink and netstack both
	// drop it), unless netstack was put in promiscuous mode.
	if [header.EthernetAddressSize]byte(dst) != s.mac && dst[0]&1 == 0 && !s.promiscuous {
		return f.drop(nil, dropNotOurs)
	}
	typ := header.Ethernet(frame).Type()
	l3 := frame[header.EthernetMinimumSize:]
	if typ == etherTypeVLAN {
		if len(l3) < vlanHeaderSize {
			return f.pass(nil, passMalformed)
		}
		// Priority-tagged (VID 0, 802.1p class of service only) frames are
		// untagged ones; a link with a VLAN (ethlink Options.VLAN) takes
		// its own tag off before the hook, so other VIDs are not ours.
		if vid := binary.BigEndian.Uint16(l3) & vlanIDMask; vid != 0 {
			return f.pass(nil, passNotIP)
		}
		typ = tcpip.NetworkProtocolNumber(binary.BigEndian.Uint16(l3[2:]))
		l3 = l3[vlanHeaderSize:]
	}
	return f.classifyNetwork(typ, l3, frame, s, offload)
}

// classifyNetwork classifies a network-layer packet. eth is the whole frame
// when there is an Ethernet header, else nil.
func (f *Filter) classifyNetwork(proto tcpip.NetworkProtocolNumber, pkt, eth []byte, s *snapshot, offload bool) link.Verdict {
	switch proto {
	case header.IPv4ProtocolNumber:
		return f.classifyIPv4(pkt, s, offload)
	case header.IPv6ProtocolNumber:
		return f.classifyIPv6(pkt, eth, s, offload)
	case header.ARPProtocolNumber:
		f.checkARP(pkt, eth, s)
	}
	return f.pass(nil, passNotIP)
}

func (f *Filter) classifyIPv4(pkt []byte, s *snapshot, offload bool) link.Verdict {
	if len(pkt) < header.IPv4MinimumSize || header.IPVersion(pkt) != header.IPv4Version {
		return f.pass(nil, passMalformed)
	}
	ip := header.IPv4(pkt)
	if ip.Protocol() != uint8(header.UDPProtocolNumber) {
		if ip.Protocol() == uint8(header.ICMPv4ProtocolNumber) {
			f.checkICMPv4(pkt, s, offload)
		}
		return f.pass(nil, passNotUDP)
	}
	dstAddr := ip.DestinationAddressSlice()
	if !s.hasV4(dstAddr) {
		return f.pass(nil, passNotLocal)
	}
	hlen := int(ip.HeaderLength())
	if hlen < header.IPv4MinimumSize || hlen > int(ip.TotalLength()) {
		return f.pass(nil, passMalformed) // no port can be read from it
	}
	if ip.More() || ip.FragmentOffset() != 0 {
		// netstack reassembles; the datagram reaches the port's netstack
		// endpoint. Only a first fragment tells which port it is for.
		var e *portEntry
		if ip.FragmentOffset() == 0 && len(pkt) >= hlen+header.UDPMinimumSize {
			e = f.lookup(header.UDP(pkt[hlen:]).DestinationPort())
		}
		return f.pass(e, passFragment)
	}
	if len(pkt) < hlen+header.UDPMinimumSize {
		return f.pass(nil, passMalformed)
	}
	udp := header.UDP(pkt[hlen:])
	e := f.lookup(udp.DestinationPort())
	if e == nil {
		return f.pass(nil, passNotRegistered)
	}
	if hlen > header.IPv4MinimumSize {
		return f.pass(e, passIPOptions) // netstack parses (and may act on) options
	}

	// The frame is for a registered port: from here it is delivered or
	// dropped, as netstack would drop it.
	tlen := int(ip.TotalLength()) // less than len(pkt) with Ethernet padding
	if tlen > len(pkt) {
		return f.drop(e, dropTruncated)
	}
	if tlen < hlen+header.UDPMinimumSize {
		return f.drop(e, dropBadLength)
	}
	if !offload && wordSum(pkt[:header.IPv4MinimumSize], 0) != 0xffff { // no options here
		return f.drop(e, dropBadChecksum)
	}
	srcAddr := ip.SourceAddressSlice()
	if martianV4Source(srcAddr, s) {
		return f.drop(e, dropMartian)
	}
	if srcAddr[0] >= 240 { // class E: netstack decides
		return f.pass(e, passUnusual)
	}
	ulen := int(udp.Length())
	if ulen < header.UDPMinimumSize {
		return f.drop(e, dropBadLength)
	}
	if ulen > tlen-hlen {
		return f.drop(e, dropTruncated)
	}
	var d Datagram
	d.Payload = pkt[hlen+header.UDPMinimumSize : hlen+ulen]
	if !offload && udp.Checksum() != 0 { // (zero: the sender did not compute one)
		d.verifyFrom(udpHeaderSum(pkt[ipv4AddrsOffset:ipv4AddrsOffset+2*header.IPv4AddressSize], pkt[hlen:hlen+ulen]))
	}
	d.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(srcAddr)), udp.SourcePort())
	d.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(dstAddr)), udp.DestinationPort())
	d.Version = header.IPv4Version
	f.deliver(e, &d)
	return link.Handled
}

func (f *Filter) classifyIPv6(pkt, eth []byte, s *snapshot, offload bool) link.Verdict {
	if len(pkt) < header.IPv6MinimumSize || header.IPVersion(pkt) != header.IPv6Version {
		return f.pass(nil, passMalformed)
	}
	ip := header.IPv6(pkt)
	switch nh := ip.NextHeader(); {
	case nh == uint8(header.UDPProtocolNumber):
	case nh == uint8(header.ICMPv6ProtocolNumber):
		f.checkICMPv6(pkt, eth, s, offload)
		return f.pass(nil, passNotUDP)
	case nh == uint8(header.IPv6FragmentExtHdrIdentifier):
		return f.pass(nil, passFragment)
	case header.IsExtensionHeader(nh):
		return f.pass(nil, passIPOptions)
	default:
		return f.pass(nil, passNotUDP)
	}
	dstAddr := ip.DestinationAddressSlice()
	if !s.hasV6(dstAddr) {
		return f.pass(nil, passNotLocal)
	}
	if len(pkt) < header.IPv6MinimumSize+header.UDPMinimumSize {
		return f.pass(nil, passMalformed)
	}
	udp := header.UDP(pkt[header.IPv6MinimumSize:])
	e := f.lookup(udp.DestinationPort())
	if e == nil {
		return f.pass(nil, passNotRegistered)
	}

	plen := int(ip.PayloadLength())
	if plen == 0 { // a jumbogram needs a hop-by-hop header, so this is bogus
		return f.drop(e, dropBadLength)
	}
	if header.IPv6MinimumSize+plen > len(pkt) {
		return f.drop(e, dropTruncated)
	}
	srcAddr := ip.SourceAddressSlice()
	if martianV6Source(srcAddr, s) {
		return f.drop(e, dropMartian)
	}
	ulen := int(udp.Length())
	if ulen < header.UDPMinimumSize {
		return f.drop(e, dropBadLength)
	}
	if ulen > plen {
		return f.drop(e, dropTruncated)
	}
	var d Datagram
	d.Payload = pkt[header.IPv6MinimumSize+header.UDPMinimumSize : header.IPv6MinimumSize+ulen]
	if !offload {
		// The UDP checksum is mandatory over IPv6 (RFC 8200 section 8.1).
		if udp.Checksum() == 0 {
			return f.drop(e, dropBadChecksum)
		}
		d.verifyFrom(udpHeaderSum(pkt[ipv6AddrsOffset:ipv6AddrsOffset+2*header.IPv6AddressSize], pkt[header.IPv6MinimumSize:header.IPv6MinimumSize+ulen]))
	}
	d.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(srcAddr)), udp.SourcePort())
	d.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(dstAddr)), udp.DestinationPort())
	d.Version = header.IPv6Version
	f.deliver(e, &d)
	return link.Handled
}

// Offsets of the source address, followed by the destination address.
const (
	ipv4AddrsOffset = 12
	ipv6AddrsOffset = 8
)

// udpHeaderSum returns the ones' complement sum of a UDP datagram's
// pseudo-header and header: its checksum is valid when this plus the
// payload's sum is 0xffff. addrs holds the source and the destination
// address as they follow each other in the IP header, udp the UDP header and
// payload. It sums the pseudo-header in place, where
// header.UDP.IsChecksumValid builds two tcpip.Addresses and makes four
// checksum calls (about 15 ns more per datagram, measured by BenchmarkHook).
func udpHeaderSum(addrs, udp []byte) uint16 {
	acc := addWords(addrs, uint64(header.UDPProtocolNumber)+uint64(len(udp)))
	return csum.Fold(addWords(udp[:header.UDPMinimumSize], acc))
}

// wordSum returns the ones' complement sum of b, whose length is a multiple
// of 4 (an IPv4 header without options, IP addresses), and initial. For such
// short inputs checksum.Checksum spends more on alignment and tails than on
// the sum: about 5 ns for 8 bytes, against 1 here.
func wordSum(b []byte, initial uint64) uint16 { return csum.Fold(addWords(b, initial)) }

// addWords adds b's big-endian 32-bit words to acc, 8 bytes per load; len(b)
// is a multiple of 4 and far below 2^33, so acc cannot overflow.
func addWords(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		x := binary.BigEndian.Uint64(b)
		acc += x>>32 + x&0xffffffff
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
	}
	return acc
}

// martianV4Source reports source addresses no datagram may come from (RFC
// 1122 3.2.1.3), which Linux drops as martians: "this network" (0/8, the
// unspecified address included), loopback, multicast, broadcast (limited
// or subnet), and the stack's own addresses (a spoof, or a loop). Class E
// (240/4) is not one: Linux takes it as unicast.
func martianV4Source(a []byte, s *snapshot) bool {
	return a[0] == 0 || a[0] == 127 || a[0]&0xf0 == 224 || [4]byte(a) == [4]byte{255, 255, 255, 255} ||
		s.hasV4(a) || s.isV4Broadcast(a)
}

// martianV6Source is martianV4Source for IPv6: multicast, loopback,
// unspecified, IPv4-mapped (RFC 4291 2.5.5.2) and our own addresses.
func martianV6Source(a []byte, s *snapshot) bool {
	if a[0] == 0xff || s.hasV6(a) {
		return true
	}
	var hi [10]byte // a zero upper 80 bits: ::, ::1 or ::ffff:a.b.c.d
	if [10]byte(a[:10]) != hi {
		return false
	}
	tail := [6]byte(a[10:])
	return tail == [6]byte{} || tail == [6]byte{0, 0, 0, 0, 0, 1} || tail[0] == 0xff && tail[1] == 0xff
}

// deliver hands one datagram that passed every check but, perhaps, its
// payload's checksum to the port's receiver. A Ring verifies the checksum
// while it copies the payload in (one pass over it instead of two); a
// datagram that fails is dropped and counted as a bad checksum, never
// delivered.
func (f *Filter) deliver(e *portEntry, d *Datagram) {
	d.port = e
	if !e.handOver(d, fastDelivered) {
		f.count(e, dropBadChecksum)
	}
}

func (f *Filter) pass(e *portEntry, c counter) link.Verdict {
	f.count(e, c)
	return link.Pass
}

func (f *Filter) drop(e *portEntry, c counter) link.Verdict {
	f.count(e, c)
	return link.Handled
}
