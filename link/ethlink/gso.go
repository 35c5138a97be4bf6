package ethlink

import (
	"errors"
	"fmt"
	"iter"

	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
)

// TCP segmentation offload.
//
// With Options.TCPOffload set the endpoint is a host-GSO endpoint
// (stack.GSOEndpoint): netstack hands it one TCP packet of up to
// MaxLargePacket bytes with a single IP and TCP header and the MSS, instead
// of one packet per MSS, and leaves the TCP checksum of every packet of such
// a connection partial (pseudo-header only), pure ACKs included. netstack
// keeps all of TCP's state; a retransmission is just another packet through
// here. The offload (a link.TCPOffload: tcpoffload.Engine) turns each large
// packet into what the device takes; the endpoint does the rest:
//
//   - cut into frames (TCPOffload.AppendFrames): the frames are written
//     with the device's batch write, in bursts no larger than the offload
//     says. Every other packet with a partial checksum is completed here.
//   - whole (TCPOffload.Vnet): every packet goes to a VnetDevice with a
//     virtio-net header; the offload builds those of large packets (marked
//     GSO, or split under a cap), and every other packet with a partial
//     checksum is marked NEEDS_CSUM here, so the kernel completes it (or,
//     delivering locally, never needs to).

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
	tcp    link.TCPOffload
	vnet   VnetDevice
	large  link.LargePacket // the large packet being handed over
	hdr    []byte           // its headers, contiguous (large.Header)
	frames [][]byte         // cut: frames to write
	starts []int            // cut: index in frames of each packet's first frame
	breaks []int            // cut: frame indices where a capped burst ends
	vpkts  []vnet.Packet    // whole: packets to write
	owner  []int            // whole: the packet each of vpkts comes from
	hdrs   [][]byte         // whole: header buffers the offload builds in
	flat   []byte           // whole: a packet flattened for the capture
}

// checkOffload validates the offload options in New. It returns the
// offload (nil when off) and, when it sends large packets whole, the
// device as a VnetDevice.
func checkOffload(opts *Options) (link.TCPOffload, VnetDevice, error) {
	tcp := link.ActiveTCPOffload(opts.TCPOffload)
	if tcp == nil {
		return nil, nil, nil
	}
	var vnetDev VnetDevice
	if tcp.Vnet() {
		v, ok := opts.Device.(VnetDevice)
		if !ok {
			return nil, nil, fmt.Errorf("ethlink: TCP offload mode vnet needs a device that writes virtio-net headers (a TAP opened with IFF_VNET_HDR); %T is not one (use soft)", opts.Device)
		}
		vnetDev = v
	}
	if err := tcp.Attach(); err != nil {
		return nil, nil, fmt.Errorf("ethlink: %w", err)
	}
	return tcp, vnetDev, nil
}

// TCPOffload returns the endpoint's TCP offload (nil when off): the value
// given in Options, e.g. a *tcpoffload.Engine for its sessions and counters.
func (e *Endpoint) TCPOffload() link.TCPOffload { return e.offload.tcp }

// GSOMaxSize implements stack.GSOEndpoint: the offload's default cap.
func (e *Endpoint) GSOMaxSize() uint32 {
	if tcp := e.offload.tcp; tcp != nil {
		return uint32(tcp.MaxLargePacket())
	}
	return 0
}

// SupportedGSO implements stack.GSOEndpoint: host GSO when offload is on.
func (e *Endpoint) SupportedGSO() tcpipstack.SupportedGSO {
	if e.offload.tcp != nil {
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

// largePacket makes o.large the large packet pkt, of payloadLen bytes cut
// at mss: its headers copied into o.hdr, its payload the packet's views
// (not copied). Once warmed up it allocates nothing.
func (o *offloadState) largePacket(pkt *tcpipstack.PacketBuffer, payloadLen, mss int) *link.LargePacket {
	o.hdr = o.hdr[:0]
	payload := o.large.Payload[:0]
	need := pkt.HeaderSize()
	for s := range packetBytes(pkt) {
		if need > 0 {
			n := min(need, len(s))
			o.hdr = append(o.hdr, s[:n]...)
			need -= n
			s = s[n:]
		}
		if len(s) > 0 {
			payload = append(payload, s)
		}
	}
	o.large = link.LargePacket{Header: o.hdr, Payload: payload, PayloadLen: payloadLen, MSS: mss}
	return &o.large
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

// writeSoft has the offload cut large packets into frames, and completes
// partial checksums.
func (e *Endpoint) writeSoft(pkts tcpipstack.PacketBufferList) (int, tcpip.Error) {
	o := &e.offload
	o.frames, o.starts, o.breaks = o.frames[:0], o.starts[:0], o.breaks[:0]
	list := pkts.AsSlice()
	for _, pkt := range list {
		o.starts = append(o.starts, len(o.frames))
		start, partial := partialChecksum(pkt)
		mss := int(pkt.GSOOptions.MSS)
		if payloadLen := pkt.Data().Size(); partial && mss > 0 && payloadLen > mss {
			first := len(o.frames)
			var perBurst int
			var err error
			o.frames, perBurst, err = o.tcp.AppendFrames(o.frames, o.largePacket(pkt, payloadLen, mss))
			if err != nil {
				continue // not from netstack's TCP; the offload counted it
			}
			for i := first + perBurst; i < len(o.frames); i += perBurst {
				o.breaks = append(o.breaks, i)
			}
			continue
		}
		var frame []byte
		o.frames, frame = appendFlat(o.frames, pkt)
		if partial {
			if err := vnet.CompletePartial(frame, start, int(pkt.GSOOptions.CsumOffset)); err == nil {
				o.tcp.CountPartialCompleted()
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
	o.vpkts, o.owner, o.hdrs = o.vpkts[:0], o.owner[:0], o.hdrs[:0]
	list := pkts.AsSlice()
	for i, pkt := range list {
		start, partial := partialChecksum(pkt)
		mss := int(pkt.GSOOptions.MSS)
		if payloadLen := pkt.Data().Size(); partial && mss > 0 && payloadLen > mss {
			var err error
			o.vpkts, o.hdrs, err = o.tcp.AppendVnet(o.vpkts, o.hdrs, o.largePacket(pkt, payloadLen, mss))
			if err != nil {
				continue // not from netstack's TCP; the offload counted it
			}
			for len(o.owner) < len(o.vpkts) {
				o.owner = append(o.owner, i)
			}
			continue
		}
		var vh vnet.Hdr
		if partial {
			vh.Flags = vnet.FlagNeedsCsum
			vh.HdrLen = uint16(pkt.HeaderSize())
			vh.CsumStart = uint16(start)
			vh.CsumOffset = pkt.GSOOptions.CsumOffset
		}
		var p *vnet.Packet
		o.vpkts, p = vnet.AppendPacket(o.vpkts, vh)
		p.Parts = appendViews(p.Parts, pkt)
		o.owner = append(o.owner, i)
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
