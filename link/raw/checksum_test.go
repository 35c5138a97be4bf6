package raw

import (
	"bytes"
	"testing"

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
			if !completeChecksum(frame) {
				t.Fatal("completeChecksum = false, want true")
			}
			if !transportValid(frame) {
				t.Error("checksum not valid after completeChecksum")
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
			if completeChecksum(frame) {
				t.Error("completeChecksum = true, want false")
			}
			if !bytes.Equal(frame, before) {
				t.Error("completeChecksum changed a frame it did not complete")
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
		if !completeChecksum(frame) {
			if !bytes.Equal(frame, before) {
				t.Fatal("frame changed although completeChecksum returned false")
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
			t.Fatalf("completeChecksum changed %d bytes, want at most the 2 of the checksum", diff)
		}
	})
}
