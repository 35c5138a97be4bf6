package tcpoffload

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/link/vnet"
)

// largePacket builds the headers and payload of a large TCP packet as
// netstack hands it to a host-GSO link: Ethernet, IP (total length of the
// whole packet), TCP with optLen bytes of options and the pseudo-header sum
// in the checksum field.
func largePacket(v6, dfClear bool, optLen, payloadLen int, flags header.TCPFlags, ipID uint16, seq uint32) (hdr, payload []byte) {
	optLen &^= 3
	tcpLen := header.TCPMinimumSize + optLen
	ipLen := header.IPv4MinimumSize
	ethType := header.IPv4ProtocolNumber
	if v6 {
		ipLen, ethType = header.IPv6MinimumSize, header.IPv6ProtocolNumber
	}
	hdr = make([]byte, header.EthernetMinimumSize+ipLen+tcpLen)
	header.Ethernet(hdr).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress("\x02\x00\x5e\x00\x53\x02"),
		DstAddr: tcpip.LinkAddress("\x02\x00\x5e\x00\x53\x01"),
		Type:    ethType,
	})
	src4, dst4 := tcpip.AddrFrom4([4]byte{198, 51, 100, 2}), tcpip.AddrFrom4([4]byte{198, 51, 100, 1})
	src6 := tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2})
	dst6 := tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
	l3 := hdr[header.EthernetMinimumSize:]
	var src, dst tcpip.Address
	if v6 {
		src, dst = src6, dst6
		header.IPv6(l3).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(tcpLen + payloadLen),
			TransportProtocol: header.TCPProtocolNumber,
			HopLimit:          64,
			TrafficClass:      0x10,
			FlowLabel:         0x12345,
			SrcAddr:           src,
			DstAddr:           dst,
		})
	} else {
		src, dst = src4, dst4
		f := header.IPv4Fields{
			TotalLength: uint16(ipLen + tcpLen + payloadLen),
			TTL:         64,
			TOS:         0x20,
			Protocol:    uint8(header.TCPProtocolNumber),
			SrcAddr:     src,
			DstAddr:     dst,
			ID:          ipID,
		}
		if !dfClear {
			f.Flags, f.ID = header.IPv4FlagDontFragment, 0
		}
		ip := header.IPv4(l3)
		ip.Encode(&f)
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	tcp := header.TCP(l3[ipLen:])
	tcp.Encode(&header.TCPFields{
		SrcPort: 80, DstPort: 40000, SeqNum: seq, AckNum: 12345,
		DataOffset: uint8(tcpLen), Flags: flags, WindowSize: 501,
	})
	opts := tcp[header.TCPMinimumSize:tcpLen]
	for i := range opts {
		opts[i] = header.TCPOptionNOP
	}
	if optLen >= 12 {
		header.EncodeTSOption(0x11223344, 0x55667788, opts[2:])
	}
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(tcpLen+payloadLen)))
	payload = make([]byte, payloadLen)
	for i := range payload {
		payload[i] = byte(i*31 + i>>9)
	}
	return hdr, payload
}

// pieces cuts b into pieces of irregular sizes, as a packet's views are.
func pieces(b []byte, seed int) [][]byte {
	var out [][]byte
	for n := 1 + seed%7; len(b) > 0; n = n*3 + 5 {
		k := min(n, len(b))
		out = append(out, b[:k])
		b = b[k:]
	}
	return out
}

// checkFrames verifies the frames cut from a large packet (hdr, payload):
// valid checksums, contiguous sequence numbers carrying the payload, at
// most mss bytes each, FIN and PSH on the last only, CWR on the first only,
// every other header byte as in the template (IP length, ID, checksums
// aside).
func checkFrames(t *testing.T, hdr, payload []byte, mss int, frames [][]byte) {
	t.Helper()
	n := segments(len(payload), mss)
	if len(frames) != n {
		t.Fatalf("%d frames for %d bytes at MSS %d, want %d", len(frames), len(payload), mss, n)
	}
	v6 := header.Ethernet(hdr).Type() == header.IPv6ProtocolNumber
	tcpOff := header.EthernetMinimumSize + header.IPv4MinimumSize
	if v6 {
		tcpOff = header.EthernetMinimumSize + header.IPv6MinimumSize
	}
	big := header.TCP(hdr[tcpOff:])
	var got []byte
	for i, f := range frames {
		if len(f) < len(hdr) {
			t.Fatalf("frame %d: %d bytes, shorter than the headers", i, len(f))
		}
		l3 := f[header.EthernetMinimumSize:]
		var src, dst tcpip.Address
		if v6 {
			ip := header.IPv6(l3)
			if int(ip.PayloadLength()) != len(l3)-header.IPv6MinimumSize {
				t.Fatalf("frame %d: IPv6 payload length %d, frame carries %d", i, ip.PayloadLength(), len(l3)-header.IPv6MinimumSize)
			}
			src, dst = ip.SourceAddress(), ip.DestinationAddress()
		} else {
			ip := header.IPv4(l3)
			if !ip.IsChecksumValid() {
				t.Fatalf("frame %d: bad IPv4 header checksum", i)
			}
			if int(ip.TotalLength()) != len(l3) {
				t.Fatalf("frame %d: IPv4 total length %d, frame carries %d", i, ip.TotalLength(), len(l3))
			}
			bigIP := header.IPv4(hdr[header.EthernetMinimumSize:])
			wantID := bigIP.ID()
			if bigIP.Flags()&header.IPv4FlagDontFragment == 0 {
				wantID += uint16(i)
			}
			if ip.ID() != wantID {
				t.Fatalf("frame %d: IPv4 ID %d, want %d", i, ip.ID(), wantID)
			}
			src, dst = ip.SourceAddress(), ip.DestinationAddress()
		}
		seg := header.TCP(f[tcpOff:])
		p := f[len(hdr):]
		if len(p) > mss || (i < n-1 && len(p) != mss) {
			t.Fatalf("frame %d: %d payload bytes at MSS %d", i, len(p), mss)
		}
		if !seg.IsChecksumValid(src, dst, checksum.Checksum(p, 0), uint16(len(p))) {
			t.Fatalf("frame %d: bad TCP checksum", i)
		}
		if seg.SequenceNumber() != big.SequenceNumber()+uint32(len(got)) {
			t.Fatalf("frame %d: sequence number %d, want %d", i, seg.SequenceNumber(), big.SequenceNumber()+uint32(len(got)))
		}
		want := big.Flags()
		if i != n-1 {
			want &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		if i != 0 {
			want &^= header.TCPFlagCwr
		}
		if seg.Flags() != want {
			t.Fatalf("frame %d: flags %v, want %v", i, seg.Flags(), want)
		}
		// Everything else is the template's: compare with the variable
		// fields copied over.
		w := append([]byte(nil), hdr...)
		if v6 {
			copy(w[header.EthernetMinimumSize+4:], l3[4:6])
		} else {
			copy(w[header.EthernetMinimumSize+2:], l3[2:6])
			copy(w[header.EthernetMinimumSize+10:], l3[10:12])
		}
		copy(w[tcpOff+4:], f[tcpOff+4:tcpOff+8])
		w[tcpOff+13] = f[tcpOff+13]
		copy(w[tcpOff+16:], f[tcpOff+16:tcpOff+18])
		if !bytes.Equal(w, f[:len(hdr)]) {
			t.Fatalf("frame %d: static header fields differ from the template:\n got % x\nwant % x", i, f[:len(hdr)], w)
		}
		got = append(got, p...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the frames do not carry the payload")
	}
}

// FuzzSegment cuts fuzzed large packets (MSS, payload length, flags,
// options, IPv4/IPv6, DF) into frames and checks every property of them;
// and checks that the partial checksum of a capped part, completed as a
// kernel would, equals the full checksum.
func FuzzSegment(f *testing.F) {
	f.Add(uint16(1448), uint16(65000), uint8(header.TCPFlagAck|header.TCPFlagPsh), false, false, uint8(12), uint16(7), uint32(1), uint16(3000))
	f.Add(uint16(1428), uint16(5000), uint8(header.TCPFlagAck|header.TCPFlagFin|header.TCPFlagPsh|header.TCPFlagCwr), true, false, uint8(12), uint16(0), uint32(0xfffff000), uint16(1428))
	f.Add(uint16(536), uint16(537), uint8(header.TCPFlagAck), false, true, uint8(0), uint16(0xfffe), uint32(99), uint16(0))
	f.Add(uint16(1), uint16(40), uint8(header.TCPFlagAck|header.TCPFlagUrg), false, true, uint8(40), uint16(1), uint32(5), uint16(7))
	f.Fuzz(func(t *testing.T, mss16, plen16 uint16, flags uint8, v6, dfClear bool, optLen uint8, ipID uint16, seq uint32, capBytes uint16) {
		mss := int(mss16%9000) + 1
		payloadLen := int(plen16) % 65000
		opt := int(optLen) % 41
		hdr, payload := largePacket(v6, dfClear, opt, payloadLen, header.TCPFlags(flags), ipID, seq)
		var tmpl headerTemplate
		if err := tmpl.load(hdr, payloadLen, mss); err != nil {
			t.Fatalf("Load: %v", err)
		}
		frames := tmpl.appendFrames(nil, pieces(payload, int(seq)), payloadLen, mss)
		checkFrames(t, hdr, payload, mss, frames)
		// Reuse: a second cut into the same buffers gives the same frames.
		if err := tmpl.load(hdr, payloadLen, mss); err != nil {
			t.Fatal(err)
		}
		if !dfClear || v6 {
			again := tmpl.appendFrames(frames[:0], pieces(payload, int(seq)+1), payloadLen, mss)
			checkFrames(t, hdr, payload, mss, again)
		}

		// A capped part with a partial checksum completes to the right one.
		chunk := max(int(capBytes)/mss, 1) * mss
		for off := 0; off < payloadLen; off += chunk {
			n := min(chunk, payloadLen-off)
			part := make([]byte, tmpl.headerLen()+n)
			tmpl.putHeader(part, off, n, off/mss, off == 0, off+n == payloadLen)
			copy(part[tmpl.headerLen():], payload[off:])
			full := append([]byte(nil), part...)
			tmpl.putChecksum(full)
			tmpl.putPartialChecksum(part, len(part)-tmpl.csumStart())
			if err := vnet.CompletePartial(part, tmpl.csumStart(), header.TCPChecksumOffset); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(part, full) {
				t.Fatalf("part at %d: completed partial checksum % x, full % x", off, part[tmpl.csumStart()+16:][:2], full[tmpl.csumStart()+16:][:2])
			}
		}
	})
}

// FuzzInbound feeds arbitrary bytes to the parsers of the offload that run
// on untrusted frames: the ACK hook and the template loader (link/vnet's
// FuzzParse does the virtio-net header and checksum completion). None may
// panic or read outside the frame, and the ACK hook must leave the frame as
// it was.
func FuzzInbound(f *testing.F) {
	hdr, payload := largePacket(false, false, 12, 100, header.TCPFlagAck, 0, 1)
	f.Add(append(hdr, payload...), uint16(34), uint16(16))
	hdr, payload = largePacket(true, false, 12, 0, header.TCPFlagAck|header.TCPFlagRst, 0, 1)
	f.Add(append(hdr, payload...), uint16(54), uint16(16))
	f.Add([]byte{1, 2, 3}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, frame []byte, start, offset uint16) {
		eng, err := New(Options{Mode: Soft})
		if err != nil {
			t.Fatal(err)
		}
		if k, err := outboundKey(frame); err == nil {
			_ = eng.SetSessionCap(k.Remote, k.Local, 0) // as if it were ours
		}
		before := append([]byte(nil), frame...)
		eng.ObserveInbound(frame)
		if !bytes.Equal(before, frame) {
			t.Fatal("ObserveInbound changed the frame")
		}
		var tmpl headerTemplate
		for _, n := range []int{len(frame), len(frame) / 2} {
			_ = tmpl.load(frame[:n], len(frame)-n, 1448)
		}
	})
}
