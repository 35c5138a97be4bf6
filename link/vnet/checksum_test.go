package vnet

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	src4 = tcpip.AddrFrom4([4]byte{198, 51, 100, 1})
	dst4 = tcpip.AddrFrom4([4]byte{198, 51, 100, 2})
	src6 = tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
	dst6 = tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2})
)

// testFrame builds an Ethernet frame carrying a TCP or UDP segment with the
// given payload and a checksum field holding junk, as offload leaves it.
func testFrame(v6 bool, proto tcpip.TransportProtocolNumber, payload []byte) []byte {
	l4len := header.TCPMinimumSize
	if proto == header.UDPProtocolNumber {
		l4len = header.UDPMinimumSize
	}
	l4len += len(payload)
	l3len := header.IPv4MinimumSize
	ethType := header.IPv4ProtocolNumber
	if v6 {
		l3len = header.IPv6MinimumSize
		ethType = header.IPv6ProtocolNumber
	}
	frame := make([]byte, header.EthernetMinimumSize+l3len+l4len)
	header.Ethernet(frame).Encode(&header.EthernetFields{
		SrcAddr: "\x02\x00\x00\x00\x00\x01", DstAddr: "\x02\x00\x00\x00\x00\x02", Type: ethType,
	})
	l3 := frame[header.EthernetMinimumSize:]
	if v6 {
		header.IPv6(l3).Encode(&header.IPv6Fields{
			PayloadLength: uint16(l4len), TransportProtocol: proto, HopLimit: 64, SrcAddr: src6, DstAddr: dst6,
		})
	} else {
		ip := header.IPv4(l3)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(l3len + l4len), Protocol: uint8(proto), TTL: 64, SrcAddr: src4, DstAddr: dst4,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	l4 := l3[l3len:]
	if proto == header.UDPProtocolNumber {
		header.UDP(l4).Encode(&header.UDPFields{SrcPort: 5004, DstPort: 5006, Length: uint16(l4len), Checksum: 0x1234})
		copy(l4[header.UDPMinimumSize:], payload)
	} else {
		header.TCP(l4).Encode(&header.TCPFields{SrcPort: 40000, DstPort: 7, SeqNum: 1, AckNum: 2,
			DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck | header.TCPFlagPsh, WindowSize: 512, Checksum: 0x1234})
		copy(l4[header.TCPMinimumSize:], payload)
	}
	return frame
}

// transportValid checks the frame's TCP or UDP checksum the way a receiver
// does: the sum over pseudo-header and segment folds to all ones.
func transportValid(frame []byte) bool {
	l3 := frame[header.EthernetMinimumSize:]
	var src, dst tcpip.Address
	var proto tcpip.TransportProtocolNumber
	var seg []byte
	if header.Ethernet(frame).Type() == header.IPv6ProtocolNumber {
		ip := header.IPv6(l3)
		src, dst, proto = ip.SourceAddress(), ip.DestinationAddress(), ip.TransportProtocol()
		seg = l3[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]
	} else {
		ip := header.IPv4(l3)
		src, dst, proto = ip.SourceAddress(), ip.DestinationAddress(), ip.TransportProtocol()
		seg = l3[ip.HeaderLength():ip.TotalLength()]
	}
	xsum := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
	return checksum.Checksum(seg, xsum) == 0xffff
}

func TestCompleteChecksum(t *testing.T) {
	payload := []byte("real-time media, checksummed late")
	for _, tc := range []struct {
		name  string
		v6    bool
		proto tcpip.TransportProtocolNumber
	}{
		{"tcp4", false, header.TCPProtocolNumber},
		{"udp4", false, header.UDPProtocolNumber},
		{"tcp6", true, header.TCPProtocolNumber},
		{"udp6", true, header.UDPProtocolNumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := testFrame(tc.v6, tc.proto, payload)
			if transportValid(frame) {
				t.Fatal("test frame's checksum is already valid")
			}
			if !CompleteChecksum(frame) {
				t.Fatal("CompleteChecksum = false, want true")
			}
			if !transportValid(frame) {
				t.Error("checksum not valid after CompleteChecksum")
			}
		})
	}
}

func TestCompleteChecksumLeavesOthersAlone(t *testing.T) {
	fragment := testFrame(false, header.UDPProtocolNumber, []byte("x"))
	header.IPv4(fragment[header.EthernetMinimumSize:]).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	longIP := testFrame(false, header.TCPProtocolNumber, nil)
	header.IPv4(longIP[header.EthernetMinimumSize:]).SetTotalLength(1500)
	longUDP := testFrame(true, header.UDPProtocolNumber, []byte("x"))
	header.UDP(longUDP[header.EthernetMinimumSize+header.IPv6MinimumSize:]).SetLength(100)
	arp := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(arp).Encode(&header.EthernetFields{Type: header.ARPProtocolNumber})
	for name, frame := range map[string][]byte{
		"fragment":       fragment,
		"IP length long": longIP,
		"UDP length bad": longUDP,
		"ARP":            arp,
		"truncated IPv6": testFrame(true, header.TCPProtocolNumber, nil)[:header.EthernetMinimumSize+30],
		"empty":          nil,
	} {
		t.Run(name, func(t *testing.T) {
			before := bytes.Clone(frame)
			if CompleteChecksum(frame) {
				t.Error("CompleteChecksum = true, want false")
			}
			if !bytes.Equal(frame, before) {
				t.Error("CompleteChecksum changed a frame it did not complete")
			}
		})
	}
}

// FuzzCompleteChecksum: any bytes, no panic; a frame reported completed has
// a valid checksum, the same length, and differs only in the checksum field.
func FuzzCompleteChecksum(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []tcpip.TransportProtocolNumber{header.TCPProtocolNumber, header.UDPProtocolNumber} {
			f.Add(testFrame(v6, proto, []byte("seed")))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		before := bytes.Clone(frame)
		if !CompleteChecksum(frame) {
			if !bytes.Equal(frame, before) {
				t.Fatal("frame changed although CompleteChecksum returned false")
			}
			return
		}
		if !transportValid(frame) {
			t.Fatalf("checksum invalid after completion: %x", frame)
		}
		diff := 0
		for i := range frame {
			if frame[i] != before[i] {
				diff++
			}
		}
		if diff > 2 {
			t.Fatalf("CompleteChecksum changed %d bytes, want at most the 2 of the checksum", diff)
		}
	})
}

// TestCompletePartial: what netstack leaves partial (pure ACKs, TCP over
// IPv4 and IPv6) and what a TAP hands over marked NEEDS_CSUM (TCP, UDP,
// including a UDP sum of zero) completes to the checksum a full
// computation gives.
func TestCompletePartial(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, n := range []int{0, 1, 100} {
			for _, proto := range []tcpip.TransportProtocolNumber{header.TCPProtocolNumber, header.UDPProtocolNumber} {
				t.Run(fmt.Sprintf("proto=%d/v6=%v/payload=%d", proto, v6, n), func(t *testing.T) {
					frame := testFrame(v6, proto, bytes.Repeat([]byte{0xa5}, n))
					start, offset := partialChecksum(frame)
					if err := CompletePartial(frame, start, offset); err != nil {
						t.Fatal(err)
					}
					want := bytes.Clone(frame)
					if !CompleteChecksum(want) {
						t.Fatal("CompleteChecksum could not parse the frame")
					}
					if !bytes.Equal(frame, want) {
						t.Errorf("completed % x, recomputed % x", frame[start+offset:][:2], want[start+offset:][:2])
					}
				})
			}
		}
	}
	// UDP whose checksum comes out as zero is sent as 0xffff.
	frame := make([]byte, 14+20+8+2)
	header.Ethernet(frame).Encode(&header.EthernetFields{Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(frame[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: 30, TTL: 1, Protocol: 17, SrcAddr: tcpip.AddrFrom4([4]byte{}), DstAddr: tcpip.AddrFrom4([4]byte{})})
	udp := header.UDP(frame[34:])
	udp.Encode(&header.UDPFields{Length: 10})
	// Choose the payload so the full sum is 0xffff (checksum zero).
	partial := header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), 10)
	udp.SetChecksum(partial)
	rest := checksum.Checksum(frame[34:42], 0)
	checksum.Put(frame[42:], ^rest)
	if err := CompletePartial(frame, 34, 6); err != nil {
		t.Fatal(err)
	}
	if udp.Checksum() != 0xffff {
		t.Errorf("UDP checksum %#04x, want 0xffff for a zero sum", udp.Checksum())
	}
	for _, bad := range [][2]int{{-1, 0}, {40, 6}, {0, 100}} {
		if err := CompletePartial(frame, bad[0], bad[1]); err == nil {
			t.Errorf("CompletePartial(start %d, offset %d) accepted it", bad[0], bad[1])
		}
	}
}

// partialChecksum stores in the checksum field of testFrame's frame the
// pseudo-header sum, as netstack or a sender with checksum offload leaves
// it, and returns where the sum starts and the field's offset from there.
func partialChecksum(frame []byte) (start, offset int) {
	l3 := frame[header.EthernetMinimumSize:]
	var src, dst tcpip.Address
	var proto tcpip.TransportProtocolNumber
	if header.Ethernet(frame).Type() == header.IPv6ProtocolNumber {
		ip := header.IPv6(l3)
		src, dst, proto = ip.SourceAddress(), ip.DestinationAddress(), ip.TransportProtocol()
		start = header.EthernetMinimumSize + header.IPv6MinimumSize
	} else {
		ip := header.IPv4(l3)
		src, dst, proto = ip.SourceAddress(), ip.DestinationAddress(), ip.TransportProtocol()
		start = header.EthernetMinimumSize + int(ip.HeaderLength())
	}
	offset = header.TCPChecksumOffset
	if proto == header.UDPProtocolNumber {
		offset = udpCsumOffset
	}
	sum := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(frame)-start))
	checksum.Put(frame[start+offset:], sum)
	return start, offset
}

func TestHdrRoundTrip(t *testing.T) {
	h := Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv6, HdrLen: 86, GSOSize: 1428, CsumStart: 54, CsumOffset: 16}
	b := make([]byte, HdrSize)
	h.MarshalTo(b)
	var got Hdr
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := got.Unmarshal(b[:9]); err != ErrShortHdr {
		t.Errorf("Unmarshal of 9 bytes: %v", err)
	}
}

// TestCompletePartialAllocatesNothing: checksum completion is on the
// receive fast path of a TAP with offloads.
func TestCompletePartialAllocatesNothing(t *testing.T) {
	frame := testFrame(false, header.TCPProtocolNumber, make([]byte, 1448))
	start, offset := partialChecksum(frame)
	if allocs := testing.AllocsPerRun(100, func() { _ = CompletePartial(frame, start, offset) }); allocs != 0 {
		t.Errorf("CompletePartial: %v allocations per run, want 0", allocs)
	}
}

// FuzzParse feeds arbitrary bytes to the parsers a link runs on untrusted
// frames: the virtio-net header and checksum completion at arbitrary
// offsets. None may panic or read outside the frame.
func FuzzParse(f *testing.F) {
	f.Add(testFrame(false, header.TCPProtocolNumber, []byte("seed")), uint16(34), uint16(16))
	f.Add(testFrame(true, header.UDPProtocolNumber, []byte("seed")), uint16(54), uint16(6))
	f.Add([]byte{1, 2, 3}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, frame []byte, start, offset uint16) {
		var vh Hdr
		if err := vh.Unmarshal(frame); err == nil {
			b := make([]byte, HdrSize)
			vh.MarshalTo(b)
			if !bytes.Equal(b, frame[:HdrSize]) {
				t.Fatal("virtio-net header does not round-trip")
			}
		} else if len(frame) >= HdrSize {
			t.Fatalf("Unmarshal of %d bytes: %v", len(frame), err)
		}
		c := bytes.Clone(frame)
		if err := CompletePartial(c, int(start), int(offset)); err == nil && int(start)+int(offset)+2 > len(c) {
			t.Fatal("CompletePartial accepted offsets outside the frame")
		}
		CompleteChecksum(bytes.Clone(frame))
	})
}
