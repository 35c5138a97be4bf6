package tcpoffload

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/csum"
)

// Errors from headerTemplate.load (wrapped with details).
var (
	errNotTCP      = errors.New("tcpoffload: not an IPv4 or IPv6 TCP packet")
	errMalformed   = errors.New("tcpoffload: malformed header")
	errUnsupported = errors.New("tcpoffload: header layout not supported")
)

// TCP flags the segmentation moves: FIN and PSH belong on the last segment
// only, CWR on the first only (as Linux's tcp_gso_segment does).
const (
	lastOnlyFlags  = uint8(header.TCPFlagFin | header.TCPFlagPsh)
	firstOnlyFlags = uint8(header.TCPFlagCwr)
)

// headerTemplate is the header of a session's large packets: Ethernet, IP and TCP
// (with options), as netstack built it for the packet being sent. The static
// fields (MACs, addresses, ports, TOS, TTL or hop limit, flow label, DF, the
// options' layout) are the same in every frame cut from it; per frame only
// the variable ones change: IP total or payload length, the IPv4 ID when DF
// is clear, the IPv4 header checksum, the TCP sequence number, FIN and PSH
// (last frame only), CWR (first frame only) and the TCP checksum.
//
// The sums over the static fields (the pseudo-header's addresses and
// protocol, the IPv4 header without length, ID and checksum) are kept from
// one large packet to the next and recomputed only when a static field
// changes (rebuilds counts how often), so a frame's checksums cost a sum
// over its TCP header and payload and a few additions.
//
// A headerTemplate is used by one transmit path at a time.
type headerTemplate struct {
	hdr    []byte // the current large packet's headers
	hdrLen int    // Ethernet + IP + TCP header bytes
	tcpOff int    // offset of the TCP header
	v6     bool
	df     bool // IPv4 DF set (always true for IPv6)

	seq    uint32 // sequence number of the first payload byte
	flags  uint8  // TCP flags of the large packet
	ipID   uint16 // IPv4 ID of the first frame (DF clear)
	nextID uint16 // the session's next IPv4 ID when DF is clear
	haveID bool

	valid    bool   // static sums computed for hdr's static fields
	pseudo   uint16 // pseudo-header sum without the length
	ipStatic uint16 // IPv4 header sum with length, ID and checksum zeroed

	rebuilds atomic.Uint64 // static-field rebuilds; snapshots read it while the link loads
}

// headerLen returns the length of the headers: where the payload starts.
func (t *headerTemplate) headerLen() int { return t.hdrLen }

// load makes hdr (Ethernet, IPv4 or IPv6 without extension headers, TCP with
// options; exactly the headers, the payload not included) the template for a
// large packet carrying payloadLen bytes cut into segments of at most mss.
// hdr is copied. The IP length field must match payloadLen.
func (t *headerTemplate) load(hdr []byte, payloadLen, mss int) error {
	if mss <= 0 {
		return fmt.Errorf("%w: MSS %d", errMalformed, mss)
	}
	if len(hdr) < header.EthernetMinimumSize {
		return fmt.Errorf("%w: %d bytes is shorter than an Ethernet header", errMalformed, len(hdr))
	}
	ipOff := header.EthernetMinimumSize
	var tcpOff int
	v6 := false
	df := true
	switch header.Ethernet(hdr).Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(hdr[ipOff:])
		if len(ip) < header.IPv4MinimumSize || ip.HeaderLength() < header.IPv4MinimumSize || int(ip.HeaderLength()) > len(ip) || ip[0]>>4 != 4 {
			return fmt.Errorf("%w: IPv4 header", errMalformed)
		}
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return errNotTCP
		}
		if ip.More() || ip.FragmentOffset() != 0 {
			return fmt.Errorf("%w: IPv4 fragment", errMalformed)
		}
		tcpOff = ipOff + int(ip.HeaderLength())
		df = ip.Flags()&header.IPv4FlagDontFragment != 0
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(hdr[ipOff:])
		if len(ip) < header.IPv6MinimumSize || ip[0]>>4 != 6 {
			return fmt.Errorf("%w: IPv6 header", errMalformed)
		}
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return fmt.Errorf("%w: IPv6 next header %d (extension headers are not segmented)", errUnsupported, ip.NextHeader())
		}
		tcpOff = ipOff + header.IPv6MinimumSize
		v6 = true
	default:
		return errNotTCP
	}
	if len(hdr) < tcpOff+header.TCPMinimumSize {
		return fmt.Errorf("%w: truncated TCP header", errMalformed)
	}
	tcpLen := int(header.TCP(hdr[tcpOff:]).DataOffset())
	if tcpLen < header.TCPMinimumSize || tcpOff+tcpLen != len(hdr) {
		return fmt.Errorf("%w: TCP data offset %d with %d header bytes after the IP header", errMalformed, tcpLen, len(hdr)-tcpOff)
	}
	ipLen := len(hdr) - ipOff + payloadLen
	if v6 {
		if got := int(header.IPv6(hdr[ipOff:]).PayloadLength()); got != ipLen-header.IPv6MinimumSize {
			return fmt.Errorf("%w: IPv6 payload length %d, want %d", errMalformed, got, ipLen-header.IPv6MinimumSize)
		}
	} else if got := int(header.IPv4(hdr[ipOff:]).TotalLength()); got != ipLen {
		return fmt.Errorf("%w: IPv4 total length %d, want %d", errMalformed, got, ipLen)
	}

	if t.valid && (t.v6 != v6 || t.tcpOff != tcpOff || t.hdrLen != len(hdr) || !staticEqual(t.hdr, hdr, tcpOff, v6)) {
		t.valid = false
	}
	t.hdr = append(t.hdr[:0], hdr...)
	t.hdrLen, t.tcpOff, t.v6, t.df = len(hdr), tcpOff, v6, df
	tcp := header.TCP(t.hdr[tcpOff:])
	t.seq = tcp.SequenceNumber()
	t.flags = uint8(tcp.Flags())
	if !t.valid {
		t.computeStatic()
	}
	if !v6 && !df {
		// A non-atomic datagram needs an ID of its own per frame (RFC 6864):
		// the frames take consecutive IDs from a counter of the session's,
		// started at the first large packet's ID.
		if !t.haveID {
			t.nextID, t.haveID = header.IPv4(t.hdr[ipOff:]).ID(), true
		}
		t.ipID = t.nextID
		t.nextID += uint16(segments(payloadLen, mss))
	}
	return nil
}

// staticEqual reports whether the static fields of a and b are the same
// (both hold a header of the same layout).
func staticEqual(a, b []byte, tcpOff int, v6 bool) bool {
	const ip = header.EthernetMinimumSize
	if !bytes.Equal(a[:ip], b[:ip]) || !bytes.Equal(a[tcpOff:tcpOff+4], b[tcpOff:tcpOff+4]) {
		return false // MACs, ethertype; ports
	}
	if v6 {
		// Version, traffic class, flow label; next header, hop limit,
		// addresses.
		return bytes.Equal(a[ip:ip+4], b[ip:ip+4]) && bytes.Equal(a[ip+6:tcpOff], b[ip+6:tcpOff])
	}
	// Version, IHL, TOS; flags and fragment offset, TTL, protocol;
	// addresses and options.
	return bytes.Equal(a[ip:ip+2], b[ip:ip+2]) && bytes.Equal(a[ip+6:ip+10], b[ip+6:ip+10]) && bytes.Equal(a[ip+12:tcpOff], b[ip+12:tcpOff])
}

func (t *headerTemplate) computeStatic() {
	const ipOff = header.EthernetMinimumSize
	var proto = [2]byte{0, uint8(header.TCPProtocolNumber)}
	if t.v6 {
		ip := t.hdr[ipOff:]
		t.pseudo = checksum.Checksum(proto[:], checksum.Checksum(ip[8:header.IPv6MinimumSize], 0))
	} else {
		ip := header.IPv4(t.hdr[ipOff:t.tcpOff])
		t.pseudo = checksum.Checksum(proto[:], checksum.Checksum(ip[12:20], 0))
		// The sum of the header with total length, ID and checksum zeroed:
		// words 1, 2 and 5 skipped.
		s := checksum.Checksum(ip[0:2], 0)
		s = checksum.Checksum(ip[6:10], s)
		t.ipStatic = checksum.Checksum(ip[12:], s)
	}
	t.valid = true
	t.rebuilds.Add(1)
}

// segments returns how many segments of at most mss bytes payloadLen bytes
// make (at least one).
func segments(payloadLen, mss int) int {
	if payloadLen <= mss {
		return 1
	}
	return (payloadLen + mss - 1) / mss
}

// putHeader writes into dst[:headerLen()] the headers of the part of the
// large packet that carries payload bytes [off, off+n): a frame cut from it,
// or (for a capped vnet write) a smaller large packet. index is the part's
// first segment number, for the IPv4 ID; first and last say whether the
// part begins or ends the large packet (CWR, FIN, PSH). The TCP checksum is
// left zero: see putChecksum and putPartialChecksum.
func (t *headerTemplate) putHeader(dst []byte, off, n, index int, first, last bool) {
	const ipOff = header.EthernetMinimumSize
	copy(dst[:t.hdrLen], t.hdr)
	ipLen := t.hdrLen - ipOff + n
	if t.v6 {
		header.IPv6(dst[ipOff:]).SetPayloadLength(uint16(ipLen - header.IPv6MinimumSize))
	} else {
		ip := header.IPv4(dst[ipOff:])
		ip.SetTotalLength(uint16(ipLen))
		id := ip.ID()
		if !t.df {
			id = t.ipID + uint16(index)
			ip.SetID(id)
		}
		ip.SetChecksum(^checksum.Combine(t.ipStatic, checksum.Combine(uint16(ipLen), id)))
	}
	tcp := header.TCP(dst[t.tcpOff:])
	tcp.SetSequenceNumber(t.seq + uint32(off))
	flags := t.flags
	if !last {
		flags &^= lastOnlyFlags
	}
	if !first {
		flags &^= firstOnlyFlags
	}
	tcp.SetFlags(flags)
	tcp.SetChecksum(0)
}

// putChecksum fills in the TCP checksum of frame, whose headers putHeader
// wrote and whose payload follows them.
func (t *headerTemplate) putChecksum(frame []byte) {
	seg := frame[t.tcpOff:]
	sum := csum.Checksum(seg, checksum.Combine(t.pseudo, uint16(len(seg))))
	header.TCP(seg).SetChecksum(^sum)
}

// putPartialChecksum stores in hdr's TCP checksum field the pseudo-header
// sum for a TCP segment of tcpLen bytes (header and payload): the partial
// checksum a receiver completes with vnet.CompletePartial (virtio-net
// NEEDS_CSUM).
func (t *headerTemplate) putPartialChecksum(hdr []byte, tcpLen int) {
	header.TCP(hdr[t.tcpOff:]).SetChecksum(checksum.Combine(t.pseudo, uint16(tcpLen)))
}

// csumStart is where the TCP checksum's sum starts: the TCP header.
func (t *headerTemplate) csumStart() int { return t.tcpOff }

// appendFrames cuts the large packet whose headers t holds, with payload
// payloadLen bytes long in pieces, into frames of at most mss payload bytes
// with complete checksums, and appends them to frames. Each frame is built
// in the buffer already in frames' spare capacity at its index when that is
// big enough, so a caller that passes the same slice back (as frames[:0])
// allocates nothing once warmed up.
func (t *headerTemplate) appendFrames(frames [][]byte, payload [][]byte, payloadLen, mss int) [][]byte {
	var c payloadCursor
	c.reset(payload)
	for off, i := 0, 0; off < payloadLen || (payloadLen == 0 && i == 0); i++ {
		n := min(mss, payloadLen-off)
		var buf []byte
		frames, buf = grow(frames, t.hdrLen+n, minFrameBuffer)
		t.putHeader(buf, off, n, i, off == 0, off+n == payloadLen)
		c.copyTo(buf[t.hdrLen:])
		t.putChecksum(buf)
		off += n
	}
	return frames
}

// minFrameBuffer is the smallest frame buffer grow allocates, so a buffer
// first used for a short frame can be reused for a full one.
const minFrameBuffer = 2048

// grow extends frames by one frame of size bytes, reusing the buffer in the
// spare capacity when it is big enough, else allocating one of at least
// minCap bytes.
func grow(frames [][]byte, size, minCap int) ([][]byte, []byte) {
	n := len(frames)
	if n < cap(frames) {
		frames = frames[:n+1]
		if b := frames[n]; cap(b) >= size {
			frames[n] = b[:size]
			return frames, frames[n]
		}
	} else {
		frames = append(frames, nil)
	}
	frames[n] = make([]byte, size, max(size, minCap))
	return frames, frames[n]
}

// payloadCursor walks a payload given in pieces (a packet's views), handing
// out consecutive byte ranges as copies or as sub-slices.
type payloadCursor struct {
	parts [][]byte
	i     int // current piece
	pos   int // offset in it
}

// Reset starts the cursor at the beginning of parts.
func (c *payloadCursor) reset(parts [][]byte) { *c = payloadCursor{parts: parts} }

// copyTo fills dst from the payload and advances past what it copied.
func (c *payloadCursor) copyTo(dst []byte) {
	for len(dst) > 0 && c.i < len(c.parts) {
		n := copy(dst, c.parts[c.i][c.pos:])
		dst = dst[n:]
		c.pos += n
		if c.pos == len(c.parts[c.i]) {
			c.i, c.pos = c.i+1, 0
		}
	}
}

// appendNext appends to out the pieces of the next n payload bytes, without
// copying them, and advances past them.
func (c *payloadCursor) appendNext(out [][]byte, n int) [][]byte {
	for n > 0 && c.i < len(c.parts) {
		p := c.parts[c.i][c.pos:]
		if len(p) > n {
			p = p[:n]
		}
		if len(p) > 0 {
			out = append(out, p)
		}
		n -= len(p)
		c.pos += len(p)
		if c.pos == len(c.parts[c.i]) {
			c.i, c.pos = c.i+1, 0
		}
	}
	return out
}
