package tcpoffload

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
)

// The Engine is the link's TCP offload: links (link/ethlink, through
// tap.Options, raw.Options, sim.EndpointOptions) take it as a
// link.TCPOffload and hand it the large packets netstack gives them.
var _ link.TCPOffload = (*Engine)(nil)

// maxHeaders bounds the Ethernet, IP and TCP headers of a large packet, all
// options included: the least a vnet header buffer is allocated with.
const maxHeaders = header.EthernetMinimumSize + header.IPv4MaximumHeaderSize + header.TCPHeaderMaximumSize

// AppendFrames implements link.TCPOffload for mode Soft: it cuts p into
// MSS-sized frames from the session's header template, checksums complete,
// and returns how many of them one burst may carry under the session's cap.
func (e *Engine) AppendFrames(frames [][]byte, p *link.LargePacket) ([][]byte, int, error) {
	s, err := e.begin(p.Header, p.PayloadLen, p.MSS)
	if err != nil {
		// Not from netstack's TCP; nothing else could send it.
		e.unsegmentable.Add(1)
		return frames, 0, err
	}
	first := len(frames)
	frames = s.tmpl.appendFrames(frames, p.Payload, p.PayloadLen, p.MSS)
	perBurst := segments(s.chunk(p.PayloadLen, p.MSS), p.MSS)
	n := len(frames) - first
	s.sent(p.PayloadLen, p.MSS, n, segments(n, perBurst))
	return frames, perBurst, nil
}

// AppendVnet implements link.TCPOffload for mode Vnet: p goes as one
// virtio-net packet marked GSO (gso_size the MSS) and NEEDS_CSUM, or, when
// the session's cap is below it, as several smaller large packets, each
// with its own headers from the template and its partial checksum.
func (e *Engine) AppendVnet(pkts []vnet.Packet, hdrs [][]byte, p *link.LargePacket) ([]vnet.Packet, [][]byte, error) {
	payloadLen, mss := p.PayloadLen, p.MSS
	s, err := e.begin(p.Header, payloadLen, mss)
	if err != nil {
		e.unsegmentable.Add(1)
		return pkts, hdrs, err
	}
	t := &s.tmpl
	vh := vnet.Hdr{
		Flags:      vnet.FlagNeedsCsum,
		GSOType:    vnet.GSOTCPv4,
		HdrLen:     uint16(t.hdrLen),
		GSOSize:    uint16(mss),
		CsumStart:  uint16(t.csumStart()),
		CsumOffset: header.TCPChecksumOffset,
	}
	if t.v6 {
		vh.GSOType = vnet.GSOTCPv6
	}
	var c payloadCursor
	c.reset(p.Payload)
	chunk := s.chunk(payloadLen, mss)
	if chunk >= payloadLen {
		var h []byte
		hdrs, h = grow(hdrs, t.hdrLen, maxHeaders)
		copy(h, p.Header) // its checksum field is netstack's partial sum
		var q *vnet.Packet
		pkts, q = vnet.AppendPacket(pkts, vh)
		q.Parts = c.appendNext(append(q.Parts, h), payloadLen)
		s.sent(payloadLen, mss, segments(payloadLen, mss), 1)
		return pkts, hdrs, nil
	}
	parts := 0
	for off := 0; off < payloadLen; off += chunk {
		n := min(chunk, payloadLen-off)
		var h []byte
		hdrs, h = grow(hdrs, t.hdrLen, maxHeaders)
		t.putHeader(h, off, n, off/mss, off == 0, off+n == payloadLen)
		t.putPartialChecksum(h, t.hdrLen-t.csumStart()+n)
		sub := vh
		if n <= mss {
			sub.GSOType, sub.GSOSize = vnet.GSONone, 0
		}
		var q *vnet.Packet
		pkts, q = vnet.AppendPacket(pkts, sub)
		q.Parts = c.appendNext(append(q.Parts, h), n)
		parts++
	}
	s.sent(payloadLen, mss, segments(payloadLen, mss), parts)
	return pkts, hdrs, nil
}
