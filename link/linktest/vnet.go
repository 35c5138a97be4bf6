package linktest

import (
	"encoding/binary"
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/link/vnet"
)

// VnetSink is a Sink that also takes packets behind virtio-net headers
// (ethlink.VnetDevice), as a TAP opened with IFF_VNET_HDR does: a UDP train
// (GSO_UDP_L4) is cut into datagrams the way Linux does it, and each
// datagram counts, and is recorded, as a frame. Put it under link/ethlink
// with Options.UDPSegmentation to test fast senders' trains without a
// kernel.
type VnetSink struct {
	Sink
	// Trains counts the UDP trains taken.
	Trains uint64
	// CountOnly makes WriteVnet count trains instead of cutting them: no
	// allocation, for tests that count the sender's.
	CountOnly bool
}

// NewVnetSink is NewSink for a VnetSink.
func NewVnetSink(size int) *VnetSink { return &VnetSink{Sink: *NewSink(size)} }

// WriteVnet implements ethlink.VnetDevice. It accepts UDP trains and
// packets with no offload; anything else is an error.
func (s *VnetSink) WriteVnet(pkts []vnet.Packet) (int, error) {
	for i := range pkts {
		p := &pkts[i]
		if s.CountOnly {
			s.mu.Lock()
			s.Trains++
			s.mu.Unlock()
			continue
		}
		var frame []byte
		for _, part := range p.Parts {
			frame = append(frame, part...)
		}
		var frames [][]byte
		switch p.Hdr.GSOType {
		case vnet.GSONone:
			frames = [][]byte{frame}
		case vnet.GSOUDPL4:
			var err error
			if frames, err = CutUDPTrain(p.Hdr, frame); err != nil {
				return i, err
			}
			s.mu.Lock()
			s.Trains++
			s.mu.Unlock()
		default:
			return i, fmt.Errorf("linktest: virtio-net GSO type %d", p.Hdr.GSOType)
		}
		if n, err := s.WriteFrames(frames); n < len(frames) {
			return i, err
		}
	}
	return len(pkts), nil
}

// CutUDPTrain cuts a UDP train (a frame behind a virtio-net header of type
// GSO_UDP_L4) into its datagrams as Linux does (__udp_gso_segment,
// inet_gso_segment, then the checksum completed as for CHECKSUM_PARTIAL):
// each gets the train's headers with its own lengths, the IPv4 ID counted up
// from the train's, and its UDP checksum completed from the train's partial
// one adjusted for its length. A wrong partial checksum in the train shows
// as a wrong checksum in every datagram.
func CutUDPTrain(h vnet.Hdr, frame []byte) ([][]byte, error) {
	hdrLen, seg := int(h.HdrLen), int(h.GSOSize)
	udpOff := int(h.CsumStart)
	switch {
	case h.Flags&vnet.FlagNeedsCsum == 0:
		return nil, fmt.Errorf("linktest: UDP train without NEEDS_CSUM")
	case udpOff+header.UDPMinimumSize != hdrLen || h.CsumOffset != 6 || hdrLen > len(frame):
		return nil, fmt.Errorf("linktest: UDP train headers: hdr_len %d, csum_start %d, csum_offset %d, frame %d bytes", hdrLen, udpOff, h.CsumOffset, len(frame))
	case seg == 0 || len(frame)-hdrLen <= seg:
		return nil, fmt.Errorf("linktest: UDP train of %d payload bytes with gso_size %d (Linux wants more than one segment)", len(frame)-hdrLen, seg)
	}
	ipOff := header.EthernetMinimumSize
	v6 := header.IPVersion(frame[ipOff:]) == header.IPv6Version
	trainUDP := header.UDP(frame[udpOff:])
	if int(trainUDP.Length()) != len(frame)-udpOff {
		return nil, fmt.Errorf("linktest: UDP train's length field %d, want %d", trainUDP.Length(), len(frame)-udpOff)
	}
	id := uint16(0)
	if !v6 {
		ip := header.IPv4(frame[ipOff:])
		if int(ip.TotalLength()) != len(frame)-ipOff {
			return nil, fmt.Errorf("linktest: UDP train's IPv4 total length %d, want %d", ip.TotalLength(), len(frame)-ipOff)
		}
		id = ip.ID()
	} else if int(header.IPv6(frame[ipOff:]).PayloadLength()) != len(frame)-udpOff {
		return nil, fmt.Errorf("linktest: UDP train's IPv6 payload length %d, want %d", header.IPv6(frame[ipOff:]).PayloadLength(), len(frame)-udpOff)
	}
	var out [][]byte
	for off := hdrLen; off < len(frame); off += seg {
		payload := frame[off:min(off+seg, len(frame))]
		d := append(append([]byte(nil), frame[:hdrLen]...), payload...)
		udpLen := uint16(header.UDPMinimumSize + len(payload))
		if v6 {
			header.IPv6(d[ipOff:]).SetPayloadLength(udpLen)
		} else {
			ip := header.IPv4(d[ipOff:])
			ip.SetTotalLength(header.IPv4MinimumSize + udpLen)
			ip.SetID(id)
			id++
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
		}
		u := header.UDP(d[udpOff:])
		// __udp_gso_segment: check = csum16_add(csum16_sub(check, len), newlen).
		partial := checksum.Combine(checksum.Combine(trainUDP.Checksum(), ^trainUDP.Length()), udpLen)
		u.SetLength(udpLen)
		u.SetChecksum(partial)
		// CHECKSUM_PARTIAL completed: the sum from csum_start to the end,
		// complemented; 0 goes out as all ones (CSUM_MANGLED_0).
		sum := ^checksum.Checksum(d[udpOff:], 0)
		if sum == 0 {
			sum = 0xffff
		}
		binary.BigEndian.PutUint16(d[udpOff+6:], sum)
		out = append(out, d)
	}
	return out, nil
}
