package fastfilter

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link"
)

// Endpoint runs a Filter in front of one of netstack's own link endpoints
// (channel, fdbased, ethernet.New(...)): the compatible form of the hook for
// links that build a PacketBuffer before anyone sees the frame. It is slower
// than Hook on a mediastack link by the PacketBuffer netstack's link already
// built, and by a copy when the packet is not contiguous.
//
// The child may deliver Ethernet frames (its link header is the 14-byte
// Ethernet header) or bare IP packets (no link header: the MAC check is
// skipped).
type Endpoint struct {
	nested.Endpoint
	filter atomic.Pointer[Filter]
}

var (
	_ tcpipstack.LinkEndpoint      = (*Endpoint)(nil)
	_ tcpipstack.NetworkDispatcher = (*Endpoint)(nil)
)

// Wrap returns child wrapped by the filter f. f may be nil and set later with
// SetFilter: a Filter needs the stack and the NIC, which need the wrapped
// endpoint first.
func Wrap(child tcpipstack.LinkEndpoint, f *Filter) *Endpoint {
	e := &Endpoint{}
	e.Endpoint.Init(child, e)
	e.filter.Store(f)
	return e
}

// SetFilter installs f (nil removes it). Packets in flight see the old
// filter or the new one.
func (e *Endpoint) SetFilter(f *Filter) { e.filter.Store(f) }

// DeliverNetworkPacket implements stack.NetworkDispatcher: the filter
// classifies the packet, and netstack gets it unless the filter handled it.
func (e *Endpoint) DeliverNetworkPacket(protocol tcpip.NetworkProtocolNumber, pkt *tcpipstack.PacketBuffer) {
	if f := e.filter.Load(); f != nil {
		offload := e.Child().Capabilities()&tcpipstack.CapabilityRXChecksumOffload != 0
		if f.classifyPacket(protocol, pkt, offload) == link.Handled {
			return
		}
	}
	e.Endpoint.DeliverNetworkPacket(protocol, pkt)
}

// flatPool holds buffers for packets whose bytes are not contiguous.
var flatPool = sync.Pool{New: func() any { return new([]byte) }}

// classifyPacket classifies a packet a netstack link endpoint delivered.
func (f *Filter) classifyPacket(protocol tcpip.NetworkProtocolNumber, pkt *tcpipstack.PacketBuffer, offload bool) link.Verdict {
	vl, skip := pkt.AsViewList()
	size := pkt.Size()
	var flat []byte
	if v := vl.Front(); v != nil && v.Next() == nil && v.Size() >= skip+size {
		flat = v.AsSlice()[skip : skip+size]
	} else {
		bp := flatPool.Get().(*[]byte)
		defer flatPool.Put(bp)
		b := (*bp)[:0]
		for v := vl.Front(); v != nil; v = v.Next() {
			s := v.AsSlice()
			if skip >= len(s) {
				skip -= len(s)
				continue
			}
			b = append(b, s[skip:]...)
			skip = 0
		}
		*bp = b
		flat = b[:min(size, len(b))]
	}
	s := f.snap.Load()
	switch linkLen := len(pkt.LinkHeader().Slice()); {
	case linkLen == header.EthernetMinimumSize:
		return f.classifyEthernet(flat, s, offload)
	case linkLen <= len(flat):
		return f.classifyNetwork(protocol, flat[linkLen:], nil, s, offload)
	default:
		return f.pass(nil, passMalformed)
	}
}
