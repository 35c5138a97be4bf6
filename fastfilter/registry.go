package fastfilter

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/ports"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// maxDatagram is the largest UDP payload netstack can hand the netstack lane
// (a reassembled IPv6 datagram), rounded up.
const maxDatagram = 1 << 16

// portEntry is what the receive path finds in the registry for one port.
// Entries are immutable once published, apart from their counters.
type portEntry struct {
	filter   *Filter
	port     uint16
	fn       ReceiveFunc
	ring     *Ring // set by RegisterRing: fn is ring.Receive
	reg      *Registration
	counters counterSet
}

// handOver passes d to the port's receiver and counts it in c (the lane it
// came by), or reports false when d's payload fails the checksum still to
// be verified (Datagram.verifyFrom), counting nothing. The count comes
// before the receiver has d, so a reader never sees a datagram the counters
// do not show yet, and never after a bad one, so counters only grow. A
// Ring is called directly, so d can live on the caller's stack, and
// verifies while it copies; it updates the port's delivered counters under
// its receivers' lock, with a plain store instead of a locked add (the
// port has no other receiver). A ReceiveFunc, which the compiler cannot see
// into, gets d verified, in a pooled copy (a pointer to the caller's would
// escape: an allocation per datagram).
func (e *portEntry) handOver(d *Datagram, c counter) bool {
	if e.ring != nil {
		return e.ring.receive(d, &e.counters[c])
	}
	if !d.checksumValid() {
		return false
	}
	e.counters[c].Add(1)
	p := getDatagram()
	*p = *d
	p.verify = false
	e.fn(p)
	putDatagram(p)
	return true
}

// Registration is a registered port range. Close it to release the ports.
type Registration struct {
	f          *Filter
	lo, hi     uint16
	entries    []*portEntry // indexed by port - lo
	lanes      []*lane      // indexed by port - lo; nil until opened with Options.UnboundUDP
	laneMu     sync.Mutex   // guards lanes after register, and laneClosed
	laneClosed bool

	acceptBroadcast atomic.Bool // SetAcceptBroadcast

	mu      sync.Mutex // serialises the netstack lanes' reads (one scratch buffer) with Close
	closed  bool
	scratch tcpip.SliceWriter
	buf     []byte
}

// lane is the netstack endpoint bound on one registered port: it reserves
// the port in netstack, receives what the fast path passes on, and is the
// fast send path's fallback sender.
type lane struct {
	entry  *portEntry
	ep     tcpip.Endpoint
	wq     waiter.Queue
	waiter waiter.Entry
}

// Register registers the ports lo..hi (inclusive, inside PortRange) with fn:
// every UDP datagram for one of them on one of the NIC's addresses is
// delivered to fn, straight from the link when the frame is plain (no
// fragment, no IP options) and sound, else through netstack.
//
// Each port gets a dual-stack netstack UDP endpoint bound to it on every
// address: no netstack socket can bind the port while it is registered, and
// what netstack receives on it (reassembled fragments, datagrams with IP
// options) is fed to the same fn with Datagram.ViaNetstack set. The endpoints
// are read from waiter callbacks, so a registration costs no goroutine.
// With Options.UnboundUDP the endpoint is opened on first use instead
// (NetstackEndpoint), and the port is not reserved in netstack until then.
//
// A port that is registered already, or bound by a netstack socket, is an
// error wrapping ErrPortInUse; nothing is registered then. Registering while
// traffic flows is safe: a frame sees the port registered or not, never half.
func (f *Filter) Register(lo, hi uint16, fn ReceiveFunc) (*Registration, error) {
	if fn == nil {
		return nil, ErrNoReceiver
	}
	return f.register(lo, hi, fn, nil)
}

// RegisterRing registers the ports lo..hi as Register does, with the ring as
// their receiver: the same as Register(lo, hi, ring.Receive), a few
// nanoseconds cheaper per datagram, as the filter calls the ring directly
// instead of through a function value and so passes the Datagram on the
// stack instead of from a pool.
func (f *Filter) RegisterRing(lo, hi uint16, ring *Ring) (*Registration, error) {
	if ring == nil {
		return nil, ErrNoReceiver
	}
	return f.register(lo, hi, ring.Receive, ring)
}

func (f *Filter) register(lo, hi uint16, fn ReceiveFunc, ring *Ring) (*Registration, error) {
	if lo > hi {
		return nil, fmt.Errorf("%w: %d-%d is reversed", ErrPortRange, lo, hi)
	}
	if first, last := f.PortRange(); lo < first || hi > last {
		return nil, fmt.Errorf("%w %d-%d: %d-%d", ErrPortRange, first, last, lo, hi)
	}
	f.refreshForRegister()

	f.regMu.Lock()
	defer f.regMu.Unlock()
	if f.closed.Load() {
		return nil, ErrClosed
	}
	n := int(hi) - int(lo) + 1
	r := &Registration{f: f, lo: lo, hi: hi, entries: make([]*portEntry, n), lanes: make([]*lane, n)}
	for i := range n {
		port := lo + uint16(i)
		if f.lookup(port) != nil {
			return nil, fmt.Errorf("%w: %d is registered already", ErrPortInUse, port)
		}
		r.entries[i] = &portEntry{filter: f, port: port, fn: fn, ring: ring, reg: r}
	}
	for i := range n {
		if f.unbound != nil { // opened on demand: only check the port is free
			if err := f.checkPortFree(r.entries[i].port); err != nil {
				return nil, err
			}
			continue
		}
		l, err := r.openLane(r.entries[i])
		if err != nil {
			r.closeLanes()
			return nil, err
		}
		r.lanes[i] = l
	}
	for i, e := range r.entries {
		f.ports[int(e.port)-int(f.portMin)].Store(r.entries[i])
	}
	f.regs[r] = struct{}{}
	return r, nil
}

func (r *Registration) openLane(e *portEntry) (*lane, error) {
	l := &lane{entry: e}
	ep, err := r.f.ns.NewEndpoint(header.UDPProtocolNumber, header.IPv6ProtocolNumber, &l.wq)
	if err != nil {
		return nil, fmt.Errorf("fastfilter: port %d: creating the netstack UDP endpoint: %s", e.port, err)
	}
	ep.SocketOptions().SetV6Only(false) // one endpoint for IPv4 and IPv6
	ep.SocketOptions().SetReceiveOriginalDstAddress(true)
	// Listen before binding: the endpoint notifies only when its queue
	// turns non-empty, so a datagram queued before we listen would block
	// the lane for good.
	l.ep = ep
	l.waiter = waiter.NewFunctionEntry(waiter.ReadableEvents, func(waiter.EventMask) { r.drain(l) })
	l.wq.EventRegister(&l.waiter)
	if err := ep.Bind(tcpip.FullAddress{Port: e.port}); err != nil {
		l.wq.EventUnregister(&l.waiter)
		ep.Close()
		if _, inUse := err.(*tcpip.ErrPortInUse); inUse {
			return nil, fmt.Errorf("%w: a netstack socket is bound to %d", ErrPortInUse, e.port)
		}
		return nil, fmt.Errorf("fastfilter: port %d: binding the netstack UDP endpoint: %s", e.port, err)
	}
	return l, nil
}

// dualStack is the network protocols of a port's endpoint.
var dualStack = []tcpip.NetworkProtocolNumber{header.IPv4ProtocolNumber, header.IPv6ProtocolNumber}

// checkPortFree reports ErrPortInUse when a netstack socket is bound to
// port, on the unspecified address or one of the NIC's: it asks netstack's
// demultiplexer, which allocates nothing (a trial reservation in its port
// manager costs 3 KB of garbage a port).
func (f *Filter) checkPortFree(port uint16) error {
	s := f.snap.Load()
	free := func(a tcpip.Address) bool {
		id := tcpipstack.TransportEndpointID{LocalPort: port, LocalAddress: a}
		return f.ns.CheckRegisterTransportEndpoint(dualStack, header.UDPProtocolNumber, id, ports.Flags{}, 0) == nil
	}
	ok := free(tcpip.Address{})
	for _, a := range s.v4 {
		ok = ok && free(tcpip.AddrFrom4(a))
	}
	for _, a := range s.v6 {
		ok = ok && free(tcpip.AddrFrom16(a))
	}
	if !ok {
		return fmt.Errorf("%w: a netstack socket is bound to %d", ErrPortInUse, port)
	}
	return nil
}

// handleUnbound is the netstack lane of registered ports that have no
// endpoint yet (Options.UnboundUDP): netstack hands it the UDP packets no
// endpoint is bound to. It validates them as a UDP endpoint would (else
// netstack counts and drops them) and delivers those for a registered port,
// as drain does.
func (f *Filter) handleUnbound(id tcpipstack.TransportEndpointID, pkt *tcpipstack.PacketBuffer) bool {
	e := f.lookup(id.LocalPort)
	if e == nil {
		return false // netstack answers port unreachable
	}
	netHdr := pkt.Network()
	lengthValid, csumValid := header.UDPValid(header.UDP(pkt.TransportHeader().Slice()),
		func() uint16 { return pkt.Data().Checksum() }, uint16(pkt.Data().Size()), pkt.NetworkProtocolNumber,
		netHdr.SourceAddress(), netHdr.DestinationAddress(), pkt.RXChecksumValidated)
	if !lengthValid || !csumValid {
		return false // netstack counts it malformed and drops it
	}
	src := addrPort(tcpip.FullAddress{Addr: id.RemoteAddress, Port: id.RemotePort})
	dst := addrPort(tcpip.FullAddress{Addr: id.LocalAddress, Port: id.LocalPort})
	if c, drop := e.reg.laneDrop(src.Addr(), dst.Addr()); drop {
		f.count(e, c)
		return true
	}
	buf := lanePool.Get().(*[]byte)
	defer lanePool.Put(buf)
	w := tcpip.SliceWriter(*buf)
	n, _ := pkt.Data().ReadTo(&w, true)
	d := Datagram{
		Payload:     (*buf)[:n],
		Src:         src,
		Dst:         dst,
		Version:     header.IPv6Version,
		ViaNetstack: true,
		port:        e,
	}
	if pkt.NetworkProtocolNumber == header.IPv4ProtocolNumber {
		d.Version = header.IPv4Version
	}
	e.handOver(&d, netstackDelivered)
	return true
}

// lanePool holds the buffers handleUnbound copies payloads into.
var lanePool = sync.Pool{New: func() any {
	b := make([]byte, maxDatagram)
	return &b
}}

// drain reads every datagram queued on l's endpoint and feeds it to the
// port's ReceiveFunc. It runs from netstack's notification, on the goroutine
// that delivered the packet.
func (r *Registration) drain(l *lane) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.buf == nil {
		r.buf = make([]byte, maxDatagram)
	}
	for {
		r.scratch = r.buf
		res, err := l.ep.Read(&r.scratch, tcpip.ReadOptions{NeedRemoteAddr: true})
		if err != nil {
			return // ErrWouldBlock: drained; or the endpoint is closing
		}
		src := addrPort(res.RemoteAddr)
		dst := addrPort(res.ControlMessages.OriginalDstAddress).Addr()
		if c, drop := r.laneDrop(src.Addr(), dst); drop {
			r.f.count(l.entry, c)
			continue
		}
		d := Datagram{
			Payload:     r.buf[:res.Count],
			Src:         src,
			Dst:         netip.AddrPortFrom(dst, l.entry.port),
			Version:     header.IPv6Version,
			ViaNetstack: true,
			port:        l.entry,
		}
		if src.Addr().Is4() {
			d.Version = header.IPv4Version
		}
		if res.ControlMessages.HasTimestamp {
			d.at = res.ControlMessages.Timestamp
		} // else read on demand, like the fast lane's
		l.entry.handOver(&d, netstackDelivered)
	}
}

// laneDrop reports whether the netstack lane drops a datagram from src to
// dst, and the counter that says why: a martian source, as the fast lane
// drops (reassembled fragments and datagrams with IP options reach the
// lane without its checks), or a broadcast or multicast destination (which
// netstack hands every endpoint bound to the port on the unspecified
// address, as the lanes are) when the registration did not ask for them.
func (r *Registration) laneDrop(src, dst netip.Addr) (counter, bool) {
	s := r.f.snap.Load()
	if src.Is4() {
		a := src.As4()
		if martianV4Source(a[:], s) {
			return dropMartian, true
		}
	} else if a := src.As16(); martianV6Source(a[:], s) {
		return dropMartian, true
	}
	if r.acceptBroadcast.Load() {
		return 0, false
	}
	if dst.IsMulticast() {
		return dropBroadcast, true
	}
	if dst.Is4() {
		if a := dst.As4(); a == [4]byte{255, 255, 255, 255} || s.isV4Broadcast(a[:]) {
			return dropBroadcast, true
		}
	}
	return 0, false
}

// SetAcceptBroadcast makes the ports of the registration receive (accept
// true) or not (false, the default) datagrams sent to a broadcast address
// (255.255.255.255, the subnet's) or to a multicast group the NIC belongs
// to (IPv6's all-nodes ff02::1 always). Such datagrams take the netstack
// lane; without this they are dropped there and counted in
// Dropped.Broadcast, as a socket bound to a unicast address would never see
// them.
func (r *Registration) SetAcceptBroadcast(accept bool) { r.acceptBroadcast.Store(accept) }

func addrPort(fa tcpip.FullAddress) netip.AddrPort {
	var a netip.Addr
	switch fa.Addr.Len() {
	case header.IPv4AddressSize:
		a = netip.AddrFrom4(fa.Addr.As4())
	case header.IPv6AddressSize:
		a = netip.AddrFrom16(fa.Addr.As16()).Unmap()
	}
	return netip.AddrPortFrom(a, fa.Port)
}

// Ports returns the registered range, inclusive.
func (r *Registration) Ports() (lo, hi uint16) { return r.lo, r.hi }

// NetstackEndpoint returns the netstack UDP endpoint bound on port, opening
// it first with Options.UnboundUDP, and nil when port is not in the
// registration or its endpoint could not be opened (OpenNetstackEndpoint
// says why). It is dual-stack: write to an IPv4 destination with a 4-byte
// address. The fast send path uses it as its fallback sender; do not Read
// from it or Close it: the registration does.
func (r *Registration) NetstackEndpoint(port uint16) tcpip.Endpoint {
	ep, _ := r.OpenNetstackEndpoint(port)
	return ep
}

// OpenNetstackEndpoint is NetstackEndpoint with the error: the port is not
// in the registration, the registration is closed, or (with
// Options.UnboundUDP, whose endpoints open here, on first use) a netstack
// socket took the port since Register (ErrPortInUse).
func (r *Registration) OpenNetstackEndpoint(port uint16) (tcpip.Endpoint, error) {
	if port < r.lo || port > r.hi {
		return nil, fmt.Errorf("%w: %d is not in %d-%d", ErrPortRange, port, r.lo, r.hi)
	}
	r.laneMu.Lock()
	defer r.laneMu.Unlock()
	if l := r.lanes[port-r.lo]; l != nil {
		return l.ep, nil
	}
	if r.f.unbound == nil || r.laneClosed {
		return nil, ErrClosed
	}
	l, err := r.openLane(r.entries[port-r.lo])
	if err != nil {
		return nil, err
	}
	r.lanes[port-r.lo] = l
	return l.ep, nil
}

// Counters returns the sum of the counters of the registration's ports.
func (r *Registration) Counters() Counters {
	var c Counters
	for _, e := range r.entries {
		c = c.Add(e.counters.snapshot())
	}
	return c
}

// PortCounters returns the counters of one port of the registration.
func (r *Registration) PortCounters(port uint16) Counters {
	if port < r.lo || port > r.hi {
		return Counters{}
	}
	return r.entries[port-r.lo].counters.snapshot()
}

// Close unregisters the ports and releases their netstack endpoints. When it
// returns, the netstack lane calls the ReceiveFunc no more; a frame the fast
// lane was classifying at that moment may still be delivered, so the
// ReceiveFunc must stay safe to call (Ring.Receive is, after Ring.Close
// too). Do not call Close from the ReceiveFunc. Closing twice is harmless.
func (r *Registration) Close() error {
	f := r.f
	f.regMu.Lock()
	if _, ok := f.regs[r]; !ok {
		f.regMu.Unlock()
		return nil
	}
	delete(f.regs, r)
	for _, e := range r.entries {
		f.ports[int(e.port)-int(f.portMin)].CompareAndSwap(e, nil)
		f.retire(e)
	}
	f.regMu.Unlock()
	r.closeLanes()
	return nil
}

func (r *Registration) closeLanes() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.laneMu.Lock()
	defer r.laneMu.Unlock()
	r.laneClosed = true
	for _, l := range r.lanes {
		if l == nil {
			continue
		}
		l.wq.EventUnregister(&l.waiter)
		l.ep.Close()
	}
}
