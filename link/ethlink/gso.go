package ethlink

import (
	"errors"
	"fmt"
	"iter"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
	"github.com/mediastack/mediastack/tcpoffload"
)

// TCP segmentation offload.
//
// With Options.TCPOffload set the endpoint is a host-GSO endpoint
// (stack.GSOEndpoint): netstack hands it one TCP packet of up to
// Engine.MaxLargePacket bytes with a single IP and TCP header and the MSS,
// instead of one packet per MSS, and leaves the TCP checksum of every packet
// of such a connection partial (pseudo-header only), pure ACKs included.
// netstack keeps all of TCP's state; a retransmission is just another packet
// through here. The endpoint then sends in the engine's form:
//
//   - Soft: large packets are cut into MSS-sized frames from the session's
//     header template (tcpoffload.Template), checksums complete, and written
//     with the device's batch write, in bursts no larger than the session's
//     cap. Every other packet with a partial checksum is completed.
//   - Vnet: every packet goes to a VnetDevice with a virtio-net header; a
//     large one is written once, marked GSO with gso_size = MSS, and every
//     packet with a partial checksum is marked NEEDS_CSUM, so the kernel
//     completes it (or, delivering locally, never needs to). A session cap
//     below the packet splits it into smaller large packets.

// VnetDevice is a Device that carries a virtio-net header with every frame:
// a TAP opened with IFF_VNET_HDR. Its WriteFrames writes frames with an empty
// header (nothing to offload).
type VnetDevice interface {
	Device
	// WriteVnet writes packets, each a virtio-net header and one frame in
	// pieces, and returns how many were written. It must not retain them.
	// A device that cannot take more now returns link.ErrQueueFull.
	WriteVnet(pkts []vnet.Packet) (int, error)
}

var _ tcpipstack.GSOEndpoint = (*Endpoint)(nil)

// offloadState is the transmit scratch of the offload paths, guarded by
// Endpoint.txMu and reused so that a steady stream allocates nothing.
type offloadState struct {
	vnet    VnetDevice
	frames  [][]byte // soft: frames to write
	starts  []int    // soft: index in frames of each packet's first frame
	breaks  []int    // soft: frame indices where a capped burst ends
	vpkts   []vnet.Packet
	owner   []int    // vnet: the packet each of vpkts comes from
	spans   [][2]int // vnet: each vpkt's range in parts
	parts   [][]byte // vnet: backing store of vpkts' Parts
	hdrs    [][]byte // vnet: headers of capped sub-packets
	hdr     []byte   // a packet's headers, contiguous
	payload [][]byte // a packet's payload, in pieces
	flat    []byte   // vnet: a packet flattened for the capture
}

// checkOffload validates the offload options in New.
func checkOffload(opts *Options) (VnetDevice, error) {
	eng := opts.TCPOffload
	if eng == nil {
		return nil, nil
	}
	var vnet VnetDevice
	switch eng.Mode() {
	case tcpoffload.Soft:
	case tcpoffload.Vnet:
		v, ok := opts.Device.(VnetDevice)
		if !ok {
			return nil, fmt.Errorf("ethlink: TCP offload mode vnet needs a device that writes virtio-net headers (a TAP opened with IFF_VNET_HDR); %T is not one (use soft)", opts.Device)
		}
		vnet = v
	default:
		return nil, fmt.Errorf("ethlink: TCP offload mode %v is not a transmit form", eng.Mode())
	}
	if err := eng.Attach(); err != nil {
		return nil, fmt.Errorf("ethlink: %w", err)
	}
	return vnet, nil
}

// TCPOffload returns the endpoint's offload engine (nil when off), for its
// session table and counters.
func (e *Endpoint) TCPOffload() *tcpoffload.Engine { return e.opts.TCPOffload }

// GSOMaxSize implements stack.GSOEndpoint: the default pacing cap.
func (e *Endpoint) GSOMaxSize() uint32 {
	if eng := e.opts.TCPOffload; eng != nil {
		return uint32(eng.MaxLargePacket())
	}
	return 0
}

// SupportedGSO implements stack.GSOEndpoint: host GSO when offload is on.
func (e *Endpoint) SupportedGSO() tcpipstack.SupportedGSO {
	if e.opts.TCPOffload != nil {
		return tcpipstack.HostGSOSupported
	}
	return tcpipstack.GSONotSupported
}

// partialChecksum reports whether netstack left pkt's TCP checksum partial,
// and where the sum starts (the transport header's offset in the frame).
func partialChecksum(pkt *tcpipstack.PacketBuffer) (start int, ok bool) {
	g := &pkt.GSOOptions
	if (g.Type != tcpipstack.GSOTCPv4 && g.Type != tcpipstack.GSOTCPv6) || !g.NeedsCsum {
		return 0, false
	}
	return len(pkt.LinkHeader().Slice()) + len(pkt.NetworkHeader().Slice()), true
}

// split copies pkt's headers (the first hdrLen bytes) into o.hdr and points
// o.payload at the rest, without copying or allocating.
func (o *offloadState) split(pkt *tcpipstack.PacketBuffer, hdrLen int) {
	o.hdr = o.hdr[:0]
	o.payload = o.payload[:0]
	need := hdrLen
	for s := range packetBytes(pkt) {
		if need > 0 {
			n := min(need, len(s))
			o.hdr = append(o.hdr, s[:n]...)
			need -= n
			s = s[n:]
		}
		if len(s) > 0 {
			o.payload = append(o.payload, s)
		}
	}
}

// appendFlat appends pkt's bytes, flattened, as one frame to frames.
func appendFlat(frames [][]byte, pkt *tcpipstack.PacketBuffer) ([][]byte, []byte) {
	n := len(frames)
	var buf []byte
	if n < cap(frames) {
		buf = frames[:n+1][n][:0]
	}
	for s := range packetBytes(pkt) {
		buf = append(buf, s...)
	}
	return append(frames, buf), buf
}

// writeOffload is WritePackets with TCP offload on.
func (e *Endpoint) writeOffload(pkts tcpipstack.PacketBufferList) (int, tcpip.Error) {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	if e.offload.vnet != nil {
		return e.writeVnet(pkts)
	}
	return e.writeSoft(pkts)
}

// writeSoft cuts large packets into frames and completes partial checksums.
func (e *Endpoint) writeSoft(pkts tcpipstack.PacketBufferList) (int, tcpip.Error) {
	o := &e.offload
	eng := e.opts.TCPOffload
	o.frames, o.starts, o.breaks = o.frames[:0], o.starts[:0], o.breaks[:0]
	list := pkts.AsSlice()
	for _, pkt := range list {
		o.starts = append(o.starts, len(o.frames))
		start, partial := partialChecksum(pkt)
		mss := int(pkt.GSOOptions.MSS)
		if payloadLen := pkt.Data().Size(); partial && mss > 0 && payloadLen > mss {
			o.split(pkt, pkt.HeaderSize())
			s, err := eng.Begin(o.hdr, payloadLen, mss)
			if err != nil {
				// Not from netstack's TCP; nothing else could send it.
				eng.CountUnsegmentable()
				continue
			}
			first := len(o.frames)
			o.frames = s.Template.AppendFrames(o.frames, o.payload, payloadLen, mss)
			perBurst := tcpoffload.Segments(s.Chunk(payloadLen, mss), mss)
			bursts := 1
			for i := first + perBurst; i < len(o.frames); i += perBurst {
				o.breaks = append(o.breaks, i)
				bursts++
			}
			s.Sent(payloadLen, mss, len(o.frames)-first, bursts)
			continue
		}
		var frame []byte
		o.frames, frame = appendFlat(o.frames, pkt)
		if partial {
			if err := vnet.CompletePartial(frame, start, int(pkt.GSOOptions.CsumOffset)); err == nil {
				eng.CountPartialCompleted()
			}
		}
	}
	written := 0
	var err error
	for i := 0; i <= len(o.breaks) && err == nil; i++ {
		end := len(o.frames)
		if i < len(o.breaks) {
			end = o.breaks[i]
		}
		if end <= written {
			continue
		}
		var n int
		n, err = e.WriteFrames(o.frames[written:end])
		written += n
	}
	// A packet counts as written once its first frame is: TCP recovers
	// the rest of a large packet cut short like any loss.
	done := 0
	for i, first := range o.starts {
		last := len(o.frames)
		if i+1 < len(o.starts) {
			last = o.starts[i+1]
		}
		if first < written || (first == last && first <= written) {
			done++
		}
	}
	if done == len(list) {
		err = nil
	}
	return writeResult(done, err)
}

// writeVnet writes every packet once with a virtio-net header.
func (e *Endpoint) writeVnet(pkts tcpipstack.PacketBufferList) (int, tcpip.Error) {
	o := &e.offload
	eng := e.opts.TCPOffload
	o.vpkts, o.owner, o.spans, o.parts = o.vpkts[:0], o.owner[:0], o.spans[:0], o.parts[:0]
	nhdr := 0
	list := pkts.AsSlice()
	for i, pkt := range list {
		var vh vnet.Hdr
		hdrLen := pkt.HeaderSize()
		start, partial := partialChecksum(pkt)
		if partial {
			vh.Flags = vnet.FlagNeedsCsum
			vh.HdrLen = uint16(hdrLen)
			vh.CsumStart = uint16(start)
			vh.CsumOffset = pkt.GSOOptions.CsumOffset
		}
		mss := int(pkt.GSOOptions.MSS)
		payloadLen := pkt.Data().Size()
		if !partial || mss == 0 || payloadLen <= mss {
			o.queue(i, vh, appendViews(o.parts, pkt))
			continue
		}
		vh.GSOSize = uint16(mss)
		vh.GSOType = vnet.GSOTCPv4
		if pkt.GSOOptions.Type == tcpipstack.GSOTCPv6 {
			vh.GSOType = vnet.GSOTCPv6
		}
		o.split(pkt, hdrLen)
		s, err := eng.Begin(o.hdr, payloadLen, mss)
		if err != nil {
			eng.CountUnsegmentable()
			continue
		}
		chunk := s.Chunk(payloadLen, mss)
		if chunk >= payloadLen {
			o.queue(i, vh, appendViews(o.parts, pkt))
			s.Sent(payloadLen, mss, tcpoffload.Segments(payloadLen, mss), 1)
			continue
		}
		// The session's cap splits the packet into smaller large packets,
		// each with its own headers from the template.
		t := &s.Template
		var c tcpoffload.PayloadCursor
		c.Reset(o.payload)
		parts := 0
		for off := 0; off < payloadLen; off += chunk {
			n := min(chunk, payloadLen-off)
			if nhdr == len(o.hdrs) {
				o.hdrs = append(o.hdrs, nil)
			}
			h := o.hdrs[nhdr]
			if cap(h) < t.HeaderLen() {
				h = make([]byte, t.HeaderLen(), maxTCPHeaders)
			}
			h = h[:t.HeaderLen()]
			o.hdrs[nhdr] = h
			nhdr++
			t.PutHeader(h, off, n, off/mss, off == 0, off+n == payloadLen)
			t.PutPartialChecksum(h, t.HeaderLen()-t.CsumStart()+n)
			sub := vh
			if n <= mss {
				sub.GSOType, sub.GSOSize = vnet.GSONone, 0
			}
			o.queue(i, sub, c.AppendNext(append(o.parts, h), n))
			parts++
		}
		s.Sent(payloadLen, mss, tcpoffload.Segments(payloadLen, mss), parts)
	}
	for j := range o.vpkts {
		o.vpkts[j].Parts = o.parts[o.spans[j][0]:o.spans[j][1]]
	}
	if c := e.opts.Capture; c != nil {
		for _, p := range o.vpkts {
			o.flat = o.flat[:0]
			for _, s := range p.Parts {
				o.flat = append(o.flat, s...)
			}
			_ = c.WriteFrame(o.flat)
		}
	}
	n, err := o.vnet.WriteVnet(o.vpkts)
	e.Stats.TxFrames.Add(uint64(n))
	if err != nil {
		e.Stats.TxErrors.Add(uint64(len(o.vpkts) - n))
	}
	done := len(list)
	if n < len(o.vpkts) {
		// A packet counts as written once its first part is.
		done = 0
		if n > 0 {
			done = o.owner[n-1] + 1
		}
	} else {
		err = nil
	}
	return writeResult(done, err)
}

// maxTCPHeaders bounds Ethernet, IP and TCP headers with options.
const maxTCPHeaders = header.EthernetMinimumSize + header.IPv6MinimumSize + header.TCPHeaderMaximumSize

// queue adds a vnet packet whose parts are what parts holds beyond
// len(o.parts), and makes parts the new o.parts.
func (o *offloadState) queue(owner int, vh vnet.Hdr, parts [][]byte) {
	o.spans = append(o.spans, [2]int{len(o.parts), len(parts)})
	o.parts = parts
	o.vpkts = append(o.vpkts, vnet.Packet{Hdr: vh})
	o.owner = append(o.owner, owner)
}

// appendViews appends pkt's bytes, as the slices of its views, to parts.
func appendViews(parts [][]byte, pkt *tcpipstack.PacketBuffer) [][]byte {
	for s := range packetBytes(pkt) {
		parts = append(parts, s)
	}
	return parts
}

// packetBytes yields pkt's bytes from its start, as the slices of its views
// (none empty), without copying.
func packetBytes(pkt *tcpipstack.PacketBuffer) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		vl, skip := pkt.AsViewList()
		for v := vl.Front(); v != nil; v = v.Next() {
			s := v.AsSlice()
			if skip >= len(s) {
				skip -= len(s)
				continue
			}
			if !yield(s[skip:]) {
				return
			}
			skip = 0
		}
	}
}

// writeResult turns a device write's outcome into WritePackets' result: a
// partial write is a success for what was written.
func writeResult(n int, err error) (int, tcpip.Error) {
	switch {
	case err == nil, n > 0:
		return n, nil
	case errors.Is(err, link.ErrQueueFull):
		return 0, &tcpip.ErrWouldBlock{}
	case errors.Is(err, link.ErrClosed):
		return 0, &tcpip.ErrClosedForSend{}
	default:
		return 0, &tcpip.ErrAborted{}
	}
}
