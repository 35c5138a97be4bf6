// Package ethlink turns a device that moves whole Ethernet frames (a TAP fd,
// an AF_PACKET socket, a simulated wire) into a netstack LinkEndpoint, with
// the two openings mediastack's fast paths need:
//
//   - a FrameHook that sees every inbound frame as raw bytes, before a
//     netstack PacketBuffer exists (building one costs about 100 ns; the fast
//     receive path is done in less), and
//   - WriteFrames, a raw frame write below netstack's network layer for the
//     fast send path.
//
// docs/design.md shows the data path through it.
//
// Everything the hook passes becomes a PacketBuffer and goes to netstack,
// which does ARP/NDP, ICMP, TCP and UDP as usual. Each link package (tap,
// raw, sim) supplies a Device and embeds the Endpoint this package builds.
//
// Frames that are neither for this endpoint's MAC nor broadcast or multicast
// are dropped and counted (a TAP or AF_PACKET socket sees the whole segment).
// With Options.VLAN the endpoint is the link of one 802.1Q VLAN: tags come
// off before the hook and netstack see a frame and go on at send (vlan.go).
// What the endpoint drops is exported through AppendDrops
// (link.DropReporter), to which the links add their device's drops.
package ethlink

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/pcap"
)

// Device moves whole Ethernet frames (destination MAC first, no FCS).
type Device interface {
	// WriteFrames writes frames and returns how many were written. It must
	// be safe for concurrent use and must not retain the frames.
	WriteFrames(frames [][]byte) (int, error)
	// Close releases the device and unblocks a pending ReadFrames.
	Close() error
}

// BatchReader is a device the endpoint reads on a goroutine of its own.
// Devices that push frames instead (link/sim) call Endpoint.DeliverFrame.
type BatchReader interface {
	// ReadFrames blocks until at least one frame is available, fills
	// bufs[i][:sizes[i]] for i < n and returns n. After Close it returns an
	// error that wraps net.ErrClosed or os.ErrClosed or is link.ErrClosed.
	ReadFrames(bufs [][]byte, sizes []int) (n int, err error)
}

// A ReaderBinder is a BatchReader that reads better when one goroutine,
// locked to its OS thread, makes every ReadFrames call (a TAP reading
// through io_uring, whose ring is one thread's). The read loop locks
// itself to its thread and calls BindReader once, before its first
// ReadFrames, with the size of its buffers.
type ReaderBinder interface {
	BindReader(bufSize int)
}

// Options configure an Endpoint. Device, MAC and MTU are required.
type Options struct {
	Device Device
	// Reader, when set, is read in batches on a goroutine started at
	// Attach. Leave nil for devices that push frames with DeliverFrame.
	Reader BatchReader
	// MAC is the endpoint's own Ethernet address.
	MAC tcpip.LinkAddress
	// MTU is the largest IP packet the link carries (1500 on Ethernet).
	MTU uint32
	// BatchSize is how many frames one ReadFrames call may return (default 32).
	BatchSize int
	// RXChecksumOffload tells netstack and the fast filter that the device
	// verified inbound checksums already.
	RXChecksumOffload bool
	// Capture, when set, records every frame sent or received.
	Capture *pcap.Writer
	// OnReadError is called once, from the reader goroutine, when reading
	// fails for a reason other than Close (a TAP deleted under us). The
	// endpoint stops reading; the owner decides what to do.
	OnReadError func(error)
	// TCPOffload, when set and on, makes the endpoint take TCP packets of
	// up to 64 KB from netstack and send them in the offload's form
	// (gso.go): a *tcpoffload.Engine, which serves this endpoint only. One
	// that sends large packets whole (Vnet) needs a VnetDevice.
	TCPOffload link.TCPOffload
	// UDPSegmentation lets fast senders (udpfast) write a train of
	// datagrams to one peer in one write, for the kernel to cut
	// (link.UDPSegmenter, udpgso.go). It needs a VnetDevice.
	UDPSegmentation bool
	// VLAN makes the endpoint the link of this 802.1Q VLAN ID (1-4094):
	// tags come off inbound frames and go onto outbound ones (vlan.go).
	// 0: no VLAN. It does not combine with TCP offload mode vnet or
	// UDPSegmentation, whose kernel-side segmentation expects untagged
	// headers.
	VLAN uint16
}

// MaxVLANHeaderLength is the room an 802.1Q tag takes beyond the plain
// Ethernet header; read buffers leave it so tagged frames are not cut.
const MaxVLANHeaderLength = header.EthernetMinimumSize + 4

// Stats counts frames at the link. All fields are updated atomically.
//
// Frames the FrameHook handles cost no counter here: the fast receive path
// keeps no per-frame atomics at the link, and the hook counts what it
// handles (fastfilter.Filter.Counters).
type Stats struct {
	// RxFrames counts frames read from a BatchReader device, added once per
	// batch. Devices that push frames with DeliverFrame (link/sim) are not
	// counted here: they count their own.
	RxFrames        atomic.Uint64
	RxToNetstack    atomic.Uint64 // frames handed to netstack
	RxDropShort     atomic.Uint64 // shorter than an Ethernet header
	RxDropOtherHost atomic.Uint64 // unicast to another MAC
	RxDropDetached  atomic.Uint64 // arrived with no stack attached
	RxDropOtherVLAN atomic.Uint64 // tagged with a VLAN that is not the link's
	RxDropUntagged  atomic.Uint64 // untagged (or VID 0) on a link with a VLAN
	TxFrames        atomic.Uint64 // frames written (netstack's and raw)
	TxErrors        atomic.Uint64 // frames the device refused
	TxUDPTrains     atomic.Uint64 // UDP trains written for the kernel to cut (their datagrams count in TxFrames)
	// TxUDPTrainsRefused counts trains the kernel refused as invalid (one:
	// UDP segmentation is then off; the kernel is older than 6.2).
	TxUDPTrainsRefused atomic.Uint64
}

// AppendDrops implements link.DropReporter with the endpoint's own drops:
// frames too short, for another MAC, arriving detached, of another VLAN or
// untagged on a VLAN, and frames the device refused to write. Links add
// their device's drops to these.
func (e *Endpoint) AppendDrops(dst []link.Drop) []link.Drop {
	s := &e.Stats
	return append(dst,
		link.Drop{Reason: "short", Packets: s.RxDropShort.Load()},
		link.Drop{Reason: "other-host", Packets: s.RxDropOtherHost.Load()},
		link.Drop{Reason: "detached", Packets: s.RxDropDetached.Load()},
		link.Drop{Reason: "other-vlan", Packets: s.RxDropOtherVLAN.Load()},
		link.Drop{Reason: "untagged", Packets: s.RxDropUntagged.Load()},
		link.Drop{Reason: "tx-error", Packets: s.TxErrors.Load()},
	)
}

// Endpoint is a netstack Ethernet LinkEndpoint over a Device.
type Endpoint struct {
	opts Options
	mac  atomic.Pointer[tcpip.LinkAddress]
	mtu  atomic.Uint32

	dispatcher atomic.Pointer[dispatcherBox]
	hook       atomic.Pointer[link.FrameHook]

	startReader sync.Once
	readerDone  sync.WaitGroup
	closed      atomic.Bool

	txMu      sync.Mutex
	txFrames  [][]byte // scratch frames reused by WritePackets
	txScratch [][]byte
	offload   offloadState // TCP offload transmit scratch (gso.go)
	udpGSO    udpGSOState  // UDP segmentation (udpgso.go)
	vlan      vlanState    // VLAN tagging scratch (vlan.go)

	onCloseMu sync.Mutex
	onClose   func()

	Stats Stats
}

type dispatcherBox struct{ d tcpipstack.NetworkDispatcher }

var (
	_ tcpipstack.LinkEndpoint = (*Endpoint)(nil)
	_ link.Hookable           = (*Endpoint)(nil)
	_ link.FrameWriter        = (*Endpoint)(nil)
	_ link.DropReporter       = (*Endpoint)(nil)
)

// New validates opts and returns an Endpoint. Reading starts when netstack
// attaches the endpoint to a NIC.
func New(opts Options) (*Endpoint, error) {
	if opts.Device == nil {
		return nil, errors.New("ethlink: Options.Device is nil")
	}
	if len(opts.MAC) != header.EthernetAddressSize {
		return nil, fmt.Errorf("ethlink: MAC %q is not a 6-byte Ethernet address", opts.MAC)
	}
	if opts.MTU < header.IPv4MinimumProcessableDatagramSize || opts.MTU > 65535 {
		return nil, fmt.Errorf("ethlink: MTU %d out of range [%d, 65535]", opts.MTU, header.IPv4MinimumProcessableDatagramSize)
	}
	if opts.VLAN > MaxVLANID {
		return nil, fmt.Errorf("ethlink: VLAN %d is not a VLAN ID (1-%d)", opts.VLAN, MaxVLANID)
	}
	if opts.VLAN != 0 && (opts.UDPSegmentation || link.ActiveTCPOffload(opts.TCPOffload) != nil && opts.TCPOffload.Vnet()) {
		return nil, fmt.Errorf("ethlink: VLAN %d does not combine with UDP segmentation or TCP offload mode vnet (use soft)", opts.VLAN)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 32
	}
	tcpOffload, vnetDev, err := checkOffload(&opts)
	if err != nil {
		return nil, err
	}
	udpDev, err := checkUDPSegmentation(&opts)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{opts: opts}
	e.offload.tcp, e.offload.vnet = tcpOffload, vnetDev
	e.udpGSO.dev = udpDev
	mac := opts.MAC
	e.mac.Store(&mac)
	e.mtu.Store(opts.MTU)
	return e, nil
}

// SetFrameHook implements link.Hookable.
func (e *Endpoint) SetFrameHook(h link.FrameHook) {
	if h == nil {
		e.hook.Store(nil)
		return
	}
	e.hook.Store(&h)
}

// DeliverFrame runs one inbound frame through the hook and, unless the hook
// handled it, hands a copy to netstack. frame is not retained, but its
// bytes may be moved (a VLAN tag is taken out in place). Devices that
// push frames (link/sim) and tests call it; BatchReader devices are read by
// the endpoint itself. It does not count the frame in Stats.RxFrames (a
// pushing device counts what it delivers), and a frame the hook handles
// touches no counter of the link at all.
func (e *Endpoint) DeliverFrame(frame []byte) {
	if c := e.opts.Capture; c != nil {
		_ = c.WriteFrame(frame)
	}
	frame, ok := e.untag(frame)
	if !ok {
		return
	}
	if o := e.offload.tcp; o != nil {
		o.ObserveInbound(frame) // the ACK hook: records, never consumes
	}
	if h := e.hook.Load(); h != nil && (*h)(frame) == link.Handled {
		return
	}
	if len(frame) < header.EthernetMinimumSize {
		e.Stats.RxDropShort.Add(1)
		return
	}
	eth := header.Ethernet(frame)
	dst := eth.DestinationAddress()
	var pktType tcpip.PacketType
	switch {
	case dst == header.EthernetBroadcastAddress:
		pktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pktType = tcpip.PacketMulticast
	case dst == e.LinkAddress():
		pktType = tcpip.PacketHost
	default:
		e.Stats.RxDropOtherHost.Add(1)
		return
	}
	box := e.dispatcher.Load()
	if box == nil {
		e.Stats.RxDropDetached.Add(1)
		return
	}
	pkt := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{
		Payload: buffer.MakeWithData(frame),
	})
	defer pkt.DecRef()
	if _, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize); !ok {
		e.Stats.RxDropShort.Add(1)
		return
	}
	pkt.PktType = pktType
	e.Stats.RxToNetstack.Add(1)
	box.d.DeliverNetworkPacket(eth.Type(), pkt)
}

// WriteFrames implements link.FrameWriter: raw frames straight to the
// device, tagged on the way when the link has a VLAN.
func (e *Endpoint) WriteFrames(frames [][]byte) (int, error) {
	if e.opts.VLAN == 0 {
		return e.writeDevice(frames)
	}
	e.vlan.mu.Lock()
	defer e.vlan.mu.Unlock()
	return e.writeDevice(e.tagFrames(frames))
}

// writeDevice writes frames as they are, captured and counted.
func (e *Endpoint) writeDevice(frames [][]byte) (int, error) {
	if e.closed.Load() {
		return 0, link.ErrClosed
	}
	if c := e.opts.Capture; c != nil {
		for _, f := range frames {
			_ = c.WriteFrame(f)
		}
	}
	n, err := e.opts.Device.WriteFrames(frames)
	e.Stats.TxFrames.Add(uint64(n))
	if err != nil {
		e.Stats.TxErrors.Add(uint64(len(frames) - n))
	}
	return n, err
}

// WritePackets implements stack.LinkWriter: each packet is flattened into a
// reused frame buffer and written to the device. Like netstack's own links it
// leaves the packets' references to the caller.
func (e *Endpoint) WritePackets(pkts tcpipstack.PacketBufferList) (int, tcpip.Error) {
	if e.offload.tcp != nil {
		return e.writeOffload(pkts)
	}
	e.txMu.Lock()
	defer e.txMu.Unlock()
	frames := e.txFrames[:0]
	for i, pkt := range pkts.AsSlice() {
		if i == len(e.txScratch) {
			e.txScratch = append(e.txScratch, nil)
		}
		buf := e.txScratch[i][:0]
		for _, s := range pkt.AsSlices() {
			buf = append(buf, s...)
		}
		e.txScratch[i] = buf
		frames = append(frames, buf)
	}
	e.txFrames = frames[:0]
	return writeResult(e.WriteFrames(frames))
}

// Attach implements stack.NetworkLinkEndpoint. The first attach starts the
// reader goroutine for BatchReader devices.
func (e *Endpoint) Attach(d tcpipstack.NetworkDispatcher) {
	if d == nil {
		e.dispatcher.Store(nil)
		return
	}
	e.dispatcher.Store(&dispatcherBox{d: d})
	if e.opts.Reader != nil {
		e.startReader.Do(func() {
			e.readerDone.Add(1)
			go e.readLoop()
		})
	}
}

func (e *Endpoint) readLoop() {
	defer e.readerDone.Done()
	size := int(e.opts.MTU) + MaxVLANHeaderLength
	bufs := make([][]byte, e.opts.BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	sizes := make([]int, e.opts.BatchSize)
	if b, ok := e.opts.Reader.(ReaderBinder); ok {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.BindReader(size)
	}
	for {
		n, err := e.opts.Reader.ReadFrames(bufs, sizes)
		e.Stats.RxFrames.Add(uint64(n)) // once per batch: no atomic per frame
		for i := 0; i < n; i++ {
			e.DeliverFrame(bufs[i][:sizes[i]])
		}
		if err != nil {
			if !e.closed.Load() && e.opts.OnReadError != nil {
				e.opts.OnReadError(err)
			}
			return
		}
	}
}

// IsAttached implements stack.NetworkLinkEndpoint.
func (e *Endpoint) IsAttached() bool { return e.dispatcher.Load() != nil }

// MTU implements stack.NetworkLinkEndpoint.
func (e *Endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.NetworkLinkEndpoint.
func (e *Endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.NetworkLinkEndpoint.
func (e *Endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.NetworkLinkEndpoint.
func (e *Endpoint) LinkAddress() tcpip.LinkAddress { return *e.mac.Load() }

// SetLinkAddress implements stack.NetworkLinkEndpoint.
func (e *Endpoint) SetLinkAddress(addr tcpip.LinkAddress) { e.mac.Store(&addr) }

// Capabilities implements stack.NetworkLinkEndpoint.
func (e *Endpoint) Capabilities() tcpipstack.LinkEndpointCapabilities {
	c := tcpipstack.CapabilityResolutionRequired
	if e.opts.RXChecksumOffload {
		c |= tcpipstack.CapabilityRXChecksumOffload
	}
	return c
}

// ARPHardwareType implements stack.NetworkLinkEndpoint.
func (*Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.NetworkLinkEndpoint.
func (e *Endpoint) AddHeader(pkt *tcpipstack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	fields := header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	}
	if fields.SrcAddr == "" {
		fields.SrcAddr = e.LinkAddress()
	}
	eth.Encode(&fields)
}

// ParseHeader implements stack.NetworkLinkEndpoint.
func (*Endpoint) ParseHeader(pkt *tcpipstack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Wait implements stack.NetworkLinkEndpoint: it waits for the reader.
func (e *Endpoint) Wait() { e.readerDone.Wait() }

// Close implements stack.NetworkLinkEndpoint. It closes the device, which
// stops the reader; Wait then returns.
func (e *Endpoint) Close() {
	if e.closed.Swap(true) {
		return
	}
	e.onCloseMu.Lock()
	action := e.onClose
	e.onCloseMu.Unlock()
	if action != nil {
		action()
	}
	_ = e.opts.Device.Close()
}

// Closed reports whether Close was called.
func (e *Endpoint) Closed() bool { return e.closed.Load() }

// SetOnCloseAction implements stack.NetworkLinkEndpoint.
func (e *Endpoint) SetOnCloseAction(f func()) {
	e.onCloseMu.Lock()
	e.onClose = f
	e.onCloseMu.Unlock()
}
