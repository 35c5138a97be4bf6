package udpfast

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// maxUDPPayload is the largest datagram payload the sender fragments
// itself: the IPv4 total length (IPv6 payload length) is 16 bits.
func (s *Sender) maxUDPPayload() int {
	if s.v6 {
		return 65535 - header.UDPMinimumSize
	}
	return 65535 - header.IPv4MinimumSize - header.UDPMinimumSize
}

// sendFragments sends payload to the template's destination as IP
// fragments of at most s.fragMTU bytes, in one link write: what Linux does
// for a socket with IP_PMTUDISC_WANT once a router lowered the path MTU,
// and what netstack does not (it fragments at the NIC's MTU only). It
// reports whether the link took every fragment.
func (s *Sender) sendFragments(payload []byte) (bool, error) {
	t := s.tmpl
	whole := t.fill(s.sc.buf(0, t.n+len(payload)), payload, 0)
	frags := s.sc.fragment(t, whole, s.fragMTU, s.fragID())
	n, err := s.link.WriteFrames(frags)
	add(&s.c.linkWrites, 1)
	return n == len(frags), err
}

// fragID returns the identification of the next fragmented datagram to the
// template's destination, never 0: from the (source, destination, UDP)
// counter, made on the first need when the sender has no IDs (DF).
func (s *Sender) fragID() uint32 {
	if s.idCtr == nil {
		if s.ids == nil {
			s.ids = newSenderIDs(s.table.Stack().Seed(), s.local.Port())
		}
		s.idCtr = s.ids.counter(s.localT, s.tmplEntry.Dst)
		if s.tmplCache != nil {
			s.tmplCache.idCtr = s.idCtr
		}
	}
	for {
		var id uint32
		if s.v6 {
			id = s.idCtr.Add(1)
		} else {
			id = uint32(take(s.idCtr, 1))
		}
		if id != 0 {
			return id
		}
	}
}

// fragment cuts whole, a frame built by t.fill, into Ethernet frames
// carrying IP fragments of at most mtu bytes (RFC 791; RFC 8200 section
// 4.5), in the scratch's fragment memory, and returns them. The UDP header
// and checksum, computed over the whole datagram, travel in the first.
func (sc *Scratch) fragment(t *template, whole []byte, mtu int, id uint32) [][]byte {
	ipHdr := t.n - header.UDPMinimumSize - ethLen // the fixed IP header
	fragHdr := 0
	if t.v6 {
		fragHdr = header.IPv6FragmentExtHdrLength
	}
	data := whole[t.n-header.UDPMinimumSize:] // UDP header and payload
	chunk := (mtu - ipHdr - fragHdr) &^ 7
	k := (len(data) + chunk - 1) / chunk
	perFrag := ethLen + ipHdr + fragHdr
	need := k*perFrag + len(data)
	if cap(sc.frag) < need {
		sc.frag = make([]byte, need)
	}
	if cap(sc.fragFrames) < k {
		sc.fragFrames = make([][]byte, k)
	}
	buf, frames := sc.frag[:need], sc.fragFrames[:k]
	for i := range frames {
		off := i * chunk
		piece := data[off:min(off+chunk, len(data))]
		more := i < k-1
		fr := buf[:perFrag+len(piece)]
		buf = buf[len(fr):]
		copy(fr, whole[:ethLen+ipHdr])
		copy(fr[perFrag:], piece)
		if t.v6 {
			ip := header.IPv6(fr[ethLen:])
			ip.SetNextHeader(header.IPv6FragmentHeader)
			ip.SetPayloadLength(uint16(fragHdr + len(piece)))
			fh := fr[ethLen+ipHdr : perFrag]
			fh[0], fh[1] = uint8(header.UDPProtocolNumber), 0
			offM := uint16(off) // the offset in 8-byte units, shifted left 3
			if more {
				offM |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], offM)
			binary.BigEndian.PutUint32(fh[4:], id)
		} else {
			ip := header.IPv4(fr[ethLen:])
			var flags uint8
			if more {
				flags = header.IPv4FlagMoreFragments
			}
			ip.SetFlagsFragmentOffset(flags, uint16(off))
			ip.SetTotalLength(uint16(ipHdr + len(piece)))
			ip.SetID(uint16(id))
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
		}
		frames[i] = fr
	}
	return frames
}
