package relay

// RTCP packet types (RFC 3550 section 12.1).
const (
	rtcpSR = 200
	rtcpRR = 201
)

// rtcpReport is what the receive path keeps of an RTCP compound packet:
// the sender report's NTP time, if any, and the first report block.
type rtcpReport struct {
	sender    uint32 // SSRC of the first packet's sender
	hasSR     bool
	srNTPMid  uint32 // the middle 32 bits of the SR's NTP timestamp, the LSR a receiver echoes
	hasBlock  bool
	block     reportBlock
	srs, rrs  int // sender and receiver reports in the compound
	malformed bool
}

// reportBlock is an RTCP reception report block (RFC 3550 section 6.4.1).
type reportBlock struct {
	ssrc         uint32 // the source it reports on
	fractionLost uint8  // in 1/256
	cumLost      int32  // 24-bit signed
	extHighest   uint32
	jitter       uint32 // in timestamp units
	lsr, dlsr    uint32 // DLSR in 1/65536 s
}

// parseRTCP reads a compound RTCP packet into r without allocating. It
// stops at the first malformed packet, keeping what came before it, and
// reports whether b held at least one well-formed packet.
func parseRTCP(b []byte, r *rtcpReport) bool {
	*r = rtcpReport{}
	first := true
	for len(b) >= 4 {
		if b[0]>>6 != 2 {
			r.malformed = true
			break
		}
		count, pt := int(b[0]&0x1f), b[1]
		n := (int(be16(b[2:])) + 1) * 4
		if n > len(b) {
			r.malformed = true
			break
		}
		pkt := b[:n]
		b = b[n:]
		if first {
			if n < 8 {
				r.malformed = true
				break
			}
			r.sender = be32(pkt[4:])
			first = false
		}
		var blocks []byte
		switch pt {
		case rtcpSR:
			if n < 28 {
				r.malformed = true
				return !first
			}
			r.srs++
			if !r.hasSR {
				r.hasSR, r.srNTPMid = true, be32(pkt[10:])
			}
			blocks = pkt[28:]
		case rtcpRR:
			if n < 8 {
				r.malformed = true
				return !first
			}
			r.rrs++
			blocks = pkt[8:]
		default:
			continue
		}
		if count*24 > len(blocks) {
			r.malformed = true
			return true
		}
		if count > 0 && !r.hasBlock {
			r.hasBlock = true
			r.block = parseBlock(blocks[:24])
		}
	}
	return !first
}

func parseBlock(b []byte) reportBlock {
	lost := int32(uint32(b[5])<<16|uint32(b[6])<<8|uint32(b[7])) << 8 >> 8 // sign-extend 24 bits
	return reportBlock{
		ssrc: be32(b), fractionLost: b[4], cumLost: lost, extHighest: be32(b[8:]),
		jitter: be32(b[12:]), lsr: be32(b[16:]), dlsr: be32(b[20:]),
	}
}
