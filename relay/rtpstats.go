package relay

import "time"

// RTP and RTCP header facts used on the receive path (RFC 3550 section 5.1
// and 6.4; RFC 5761 section 4).

// rtpSSRC returns the SSRC of an RTP packet, and false for anything too
// short or not RTP version 2.
func rtpSSRC(b []byte) (uint32, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, false
	}
	return be32(b[8:]), true
}

// rtcpSSRC returns the sender's SSRC of an RTCP packet (the first of a
// compound), and false for anything that is not RTCP version 2.
func rtcpSSRC(b []byte) (uint32, bool) {
	if !isRTCP(b) {
		return 0, false
	}
	return be32(b[4:]), true
}

// isRTCP tells RTCP from RTP on a multiplexed port (RFC 5761 section 4):
// the second octet of RTCP is its packet type, 192-223, where RTP has the
// marker bit and a payload type of 64-95, which RTP with RTCP multiplexed
// must not use.
func isRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// staticClockRates are the RTP clock rates of RFC 3551's static payload
// types (0 = unassigned or dynamic).
var staticClockRates = [96]uint32{
	0: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000,
	10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025,
	17: 22050, 18: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000,
	33: 90000, 34: 90000,
}

// RFC 3550 appendix A.1's constants.
const (
	rtpSeqMod     = 1 << 16
	maxDropout    = 3000
	maxMisorder   = 100
	minSequential = 2
)

// rtpSource tracks one RTP source (SSRC) as RFC 3550 appendix A.1, A.3 and
// A.8 do: extended highest sequence number, expected and received
// packets, and inter-arrival jitter. It allocates nothing.
type rtpSource struct {
	ssrc      uint32
	valid     bool // a packet was seen
	pt        uint8
	rate      uint32 // clock rate of pt, 0 when unknown
	maxSeq    uint16
	cycles    uint32 // shifted count of seq number cycles
	baseSeq   uint32
	badSeq    uint32
	probation int
	received  uint64

	transit   int64 // relative transit time of the previous packet, in timestamp units
	hasTrans  bool
	jitter16  int64 // jitter in timestamp units, times 16 (A.8)
	restarts  uint64
	priorLost int64 // lost by earlier SSRCs of this side
}

// initSeq is A.1's init_seq.
func (s *rtpSource) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = rtpSeqMod + 1
	s.cycles = 0
	s.received = 0
}

// updateSeq is A.1's update_seq: it reports whether the packet counts.
func (s *rtpSource) updateSeq(seq uint16) bool {
	udelta := seq - s.maxSeq
	switch {
	case s.probation > 0:
		// A source is valid once minSequential packets came in sequence.
		if seq == s.maxSeq+1 {
			s.probation--
			s.maxSeq = seq
			if s.probation == 0 {
				s.initSeq(seq)
				s.received++
				return true
			}
		} else {
			s.probation = minSequential - 1
			s.maxSeq = seq
		}
		return false
	case udelta < maxDropout:
		// In order, with a permissible gap.
		if seq < s.maxSeq {
			s.cycles += rtpSeqMod
		}
		s.maxSeq = seq
	case udelta <= rtpSeqMod-maxMisorder:
		// A very large jump: two in sequence mean the source restarted.
		if uint32(seq) == s.badSeq {
			s.restarts++
			s.priorLost += s.lost()
			s.initSeq(seq)
		} else {
			s.badSeq = (uint32(seq) + 1) & (rtpSeqMod - 1)
			return false
		}
	default:
		// A duplicate or reordered packet.
	}
	s.received++
	return true
}

// extMax is the extended highest sequence number received.
func (s *rtpSource) extMax() uint32 { return s.cycles + uint32(s.maxSeq) }

// expected is A.3's expected packet count.
func (s *rtpSource) expected() int64 {
	if !s.valid || s.probation > 0 && s.received == 0 {
		return 0
	}
	return int64(s.extMax()) - int64(s.baseSeq) + 1
}

// lost is A.3's cumulative number of packets lost (negative with
// duplicates).
func (s *rtpSource) lost() int64 {
	if e := s.expected(); e > 0 {
		return e - int64(s.received)
	}
	return 0
}

// update counts an RTP packet b (at least 12 bytes, version 2) that
// arrived at now (nanoseconds on the service clock); rates are the clock
// rates of the dynamic payload types (Spec.ClockRates).
func (s *rtpSource) update(b []byte, now int64, rates *[32]uint32) {
	ssrc, seq, ts, pt := be32(b[8:]), be16(b[2:]), be32(b[4:]), b[1]&0x7f
	if !s.valid || ssrc != s.ssrc {
		if s.valid {
			// A new source: keep what the old one lost.
			s.priorLost += s.lost()
		}
		*s = rtpSource{ssrc: ssrc, valid: true, priorLost: s.priorLost, restarts: s.restarts, pt: pt, rate: clockRate(pt, rates)}
		s.initSeq(seq)
		s.maxSeq = seq - 1
		s.probation = minSequential
	}
	if pt != s.pt {
		s.pt, s.rate, s.hasTrans = pt, clockRate(pt, rates), false
	}
	s.updateSeq(seq)
	if s.rate == 0 {
		return
	}
	// A.8: the transit time in timestamp units, split to stay in int64.
	sec, frac := now/1e9, now%1e9
	arrival := sec*int64(s.rate) + frac*int64(s.rate)/1e9
	transit := int64(uint32(arrival) - ts) // modulo 2^32, as timestamps wrap
	if s.hasTrans {
		d := int64(int32(uint32(transit - s.transit)))
		if d < 0 {
			d = -d
		}
		s.jitter16 += d - ((s.jitter16 + 8) >> 4)
	}
	s.transit, s.hasTrans = transit, true
}

// jitter returns the inter-arrival jitter in timestamp units.
func (s *rtpSource) jitterTS() uint32 { return uint32(s.jitter16 >> 4) }

// clockRate returns pt's RTP clock rate: RFC 3551's for a static payload
// type, rates' for a dynamic one, else 0 (unknown).
func clockRate(pt uint8, rates *[32]uint32) uint32 {
	if int(pt) < len(staticClockRates) {
		return staticClockRates[pt]
	}
	if pt >= 96 && pt < 128 {
		return rates[pt-96]
	}
	return 0
}

// tsDuration converts ts timestamp units at rate to a duration (0 when
// the rate is unknown).
func tsDuration(ts uint32, rate uint32) time.Duration {
	if rate == 0 {
		return 0
	}
	return time.Duration(int64(ts) * int64(time.Second) / int64(rate))
}
