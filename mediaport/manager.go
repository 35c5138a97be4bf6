package mediaport

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
)

// Errors returned by the Manager (wrapped with details; test with errors.Is).
var (
	// ErrExhausted: every port (or every RTP/RTCP pair) of the range is open.
	ErrExhausted = errors.New("mediaport: no free port in the media port range")
	// ErrPortRange: the port asked for is outside the range.
	ErrPortRange = errors.New("mediaport: port outside the media port range")
	// ErrPortInUse: the port is open already, or a netstack socket has it.
	ErrPortInUse = errors.New("mediaport: port in use")
	// ErrOddRTPPort: an RTP port must be even (RFC 3550 section 11).
	ErrOddRTPPort = errors.New("mediaport: RTP port must be even, RTCP the odd port after it")
	// ErrClosed: the Manager is closed.
	ErrClosed = errors.New("mediaport: manager closed")
	// ErrNoBuffer: the port hands datagrams to a function (OpenFunc) and
	// has no buffer to read from.
	ErrNoBuffer = errors.New("mediaport: port delivers to a receive function; there is nothing to read")
)

// Options configure a Manager. PortMin and PortMax are required.
type Options struct {
	// NIC is the index of the stack's NIC (its position in
	// stack.Options.NICs) the ports are on. Default 0.
	NIC int
	// PortMin and PortMax bound the media port range, inclusive. The
	// filter's registry and the policy ARP table are arrays over it: a few
	// dozen bytes per port.
	PortMin, PortMax uint16
	// ARP configures the policy ARP table: Aging, Refresh and Clock are
	// used (zero: policyarp's defaults); Stack, NIC, BasePort and Ports are
	// set by the Manager.
	ARP policyarp.Options
	// Ring sizes each port's receive buffer (fastfilter.RingOptions).
	// Default: DefaultPortBufferPackets datagrams, in slots of the link's MTU.
	Ring fastfilter.RingOptions
	// DSCP is the Differentiated Services code point the ports mark their
	// datagrams with, on both lanes (the IPv4 TOS / IPv6 traffic class byte
	// is DSCP << 2; the ECN bits stay 0, not ECN-capable, as RTP over UDP
	// needs RFC 6679's negotiation for ECN). 0 means DefaultDSCP;
	// DSCPBestEffort sends them unmarked. Port.SetDSCP changes one port.
	DSCP int
	// AcceptBroadcast makes the ports receive datagrams sent to a broadcast
	// address or a multicast group the NIC is in (IPv6's all-nodes group
	// always). By default a port, like a socket bound to a unicast
	// address, does not: they are dropped and counted (Dropped.Broadcast).
	// Port.SetAcceptBroadcast changes one port.
	AcceptBroadcast bool
	// InstallHook installs the filter's receive hook on the link, and is
	// called with nil at Close. Default: the link's own SetFrameHook (the
	// link must be a link.Hookable). Set it when something else owns the
	// link's hook and chains to the filter.
	InstallHook func(link.FrameHook)
}

// DefaultDSCP is the code point media ports mark their datagrams with by
// default: EF, expedited forwarding (RFC 3246), RFC 4594's class for
// real-time interactive audio and video.
const DefaultDSCP = 46

// DSCPBestEffort as Options.DSCP sends datagrams unmarked (CS0, the
// default class).
const DSCPBestEffort = -1

// DefaultPortBufferPackets is the default depth of a port's receive buffer
// (its Options.Ring.Packets): at 50 packets/s, five seconds of an RTP
// stream. A port holds one stream; fastfilter.DefaultRingPackets, the
// default of a bare Ring, is deeper, for rings shared by many ports.
const DefaultPortBufferPackets = 256

// Manager owns the fast paths of one NIC and the media ports opened on it.
type Manager struct {
	st      *stack.Stack
	nic     tcpip.NICID
	link    udpfast.Link
	filter  *fastfilter.Filter
	table   *policyarp.Table
	install func(link.FrameHook)
	ring    fastfilter.RingOptions
	ids     *udpfast.IDs // the IPv4 IDs of every port's senders
	tos     uint8        // Options.DSCP << 2
	bcast   bool         // Options.AcceptBroadcast
	lo, hi  uint16

	mu      sync.Mutex
	ports   []*Port // indexed by port - lo; nil when free
	open    int
	next    int // where the search for a free port starts (next fit)
	closed  bool
	retired udpfast.Stats // sends of ports closed since
}

// NewManager builds the fast paths of NIC opts.NIC of st over the port range
// and installs the receive hook on the NIC's link. Close it to remove the
// hook and release every port.
func NewManager(st *stack.Stack, opts Options) (*Manager, error) {
	if st == nil {
		return nil, errors.New("mediaport: nil stack")
	}
	if opts.PortMin == 0 || opts.PortMin > opts.PortMax {
		return nil, fmt.Errorf("mediaport: port range %d-%d is empty or includes port 0", opts.PortMin, opts.PortMax)
	}
	if opts.NIC < 0 || !st.Netstack().HasNIC(tcpip.NICID(opts.NIC+1)) {
		return nil, fmt.Errorf("mediaport: the stack has no NIC %d", opts.NIC)
	}
	nic := st.NICID(opts.NIC)
	lk, ok := st.Link(opts.NIC).(udpfast.Link)
	if !ok {
		return nil, fmt.Errorf("mediaport: the link of NIC %d (%T) cannot write raw frames: use a mediastack link (tap, raw, sim, ethlink)", opts.NIC, st.Link(opts.NIC))
	}
	install := opts.InstallHook
	if install == nil {
		h, ok := st.Link(opts.NIC).(link.Hookable)
		if !ok {
			return nil, fmt.Errorf("mediaport: the link of NIC %d (%T) takes no receive hook: use a mediastack link or Options.InstallHook", opts.NIC, st.Link(opts.NIC))
		}
		install = h.SetFrameHook
	}
	switch {
	case opts.DSCP == 0:
		opts.DSCP = DefaultDSCP
	case opts.DSCP == DSCPBestEffort:
		opts.DSCP = 0
	case opts.DSCP < 0 || opts.DSCP > maxDSCP:
		return nil, fmt.Errorf("mediaport: Options.DSCP %d: want 0 to %d, or DSCPBestEffort", opts.DSCP, maxDSCP)
	}
	ring := opts.Ring
	if ring.Packets == 0 {
		ring.Packets = DefaultPortBufferPackets
	}
	if ring.SlotSize == 0 {
		// Room for the largest datagram of an unfragmented frame, rounded
		// up to a cache line.
		ring.SlotSize = (int(lk.MTU()) + 63) &^ 63
	}
	if _, err := fastfilter.NewRing(fastfilter.RingOptions{Packets: 1, SlotSize: ring.SlotSize}); err != nil {
		return nil, fmt.Errorf("mediaport: Options.Ring: %w", err)
	}

	// The ports' netstack endpoints open on first use (the first datagram
	// sent through netstack): an idle port costs no netstack memory.
	unbound := func(h func(tcpipstack.TransportEndpointID, *tcpipstack.PacketBuffer) bool) {
		st.SetUnboundUDP(opts.NIC, h)
	}
	filter, err := fastfilter.New(fastfilter.Options{Stack: st.Netstack(), NIC: nic, PortMin: opts.PortMin, PortMax: opts.PortMax, UnboundUDP: unbound})
	if err != nil {
		return nil, err
	}
	keepEphemeralPortsOut(st.Netstack(), opts.PortMin, opts.PortMax)
	arp := opts.ARP
	arp.Stack, arp.NIC = st.Netstack(), nic
	arp.BasePort, arp.Ports = opts.PortMin, int(opts.PortMax)-int(opts.PortMin)+1
	table, err := policyarp.New(arp)
	if err != nil {
		filter.Close()
		return nil, err
	}
	filter.SubscribeNeighborUpdates(table.HandleNeighborUpdate)
	filter.SubscribePacketTooBig(table.HandlePacketTooBig)
	m := &Manager{
		st:      st,
		nic:     nic,
		link:    lk,
		filter:  filter,
		table:   table,
		install: install,
		ring:    ring,
		ids:     udpfast.NewIDs(uint64(st.Seed())), // same seed, same IDs: simulations stay deterministic
		tos:     uint8(opts.DSCP) << 2,
		bcast:   opts.AcceptBroadcast,
		lo:      opts.PortMin,
		hi:      opts.PortMax,
		ports:   make([]*Port, arp.Ports),
	}
	install(filter.Hook)
	return m, nil
}

// Close removes the receive hook, closes every open port and releases the
// filter and the policy ARP table. Closing twice is harmless.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var open []*Port
	for _, p := range m.ports {
		if p != nil {
			open = append(open, p)
		}
	}
	m.mu.Unlock()
	m.install(nil)
	for _, p := range open {
		p.Close()
	}
	m.filter.Close()
	m.table.Close()
	return nil
}

// PortRange returns the media port range, inclusive.
func (m *Manager) PortRange() (lo, hi uint16) { return m.lo, m.hi }

// Contains reports whether port is inside the media port range.
func (m *Manager) Contains(port uint16) bool { return port >= m.lo && port <= m.hi }

// Filter returns the manager's fast receive filter (for its counters and
// neighbour subscriptions; do not Close it or register ports on it).
func (m *Manager) Filter() *fastfilter.Filter { return m.filter }

// Table returns the manager's policy ARP table (for SetStatic and its
// statistics; do not Close it).
func (m *Manager) Table() *policyarp.Table { return m.table }

// Stack returns the stack the manager's NIC belongs to.
func (m *Manager) Stack() *stack.Stack { return m.st }

// Open opens a media port: port, or the next free port of the range when
// port is 0. Datagrams for it are buffered for ReadFrom and its relatives.
func (m *Manager) Open(port uint16) (*Port, error) {
	return m.openOne(port, nil)
}

// ReceiveFunc is called with a port opened by OpenFunc and each datagram
// it receives. It runs on the link's receive goroutine (or netstack's, for
// the netstack lane), possibly concurrently with itself, and must not block
// nor retain d or d.Payload. It may write to any port, p included: that is
// how a relay or a reflector forwards a datagram without a goroutine hop.
type ReceiveFunc func(p *Port, d *fastfilter.Datagram)

// OpenFunc opens a media port whose datagrams are handed to fn instead of
// a buffer (port 0: the next free one). fn may be called before OpenFunc
// returns; a write it makes then waits until the port is set up. The
// port's read methods return ErrNoBuffer.
func (m *Manager) OpenFunc(port uint16, fn ReceiveFunc) (*Port, error) {
	if fn == nil {
		return nil, errors.New("mediaport: OpenFunc: nil receive function")
	}
	return m.openOne(port, fn)
}

func (m *Manager) openOne(port uint16, fn ReceiveFunc) (*Port, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if port == 0 {
		var err error
		if port, err = m.allocLocked(1); err != nil {
			return nil, err
		}
	}
	return m.openLocked(port, fn)
}

// Pair is an RTP/RTCP port pair: RTP on an even port, RTCP on the next.
type Pair struct {
	RTP, RTCP *Port
}

// Close closes both ports.
func (p *Pair) Close() error {
	return errors.Join(p.RTP.Close(), p.RTCP.Close())
}

// OpenPair opens an RTP/RTCP pair: rtpPort (even) and rtpPort+1, or the
// next free pair of the range when rtpPort is 0. Both are opened or
// neither.
func (m *Manager) OpenPair(rtpPort uint16) (*Pair, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rtpPort == 0 {
		var err error
		if rtpPort, err = m.allocLocked(2); err != nil {
			return nil, err
		}
	} else if rtpPort%2 != 0 {
		return nil, fmt.Errorf("%w: %d is odd", ErrOddRTPPort, rtpPort)
	}
	rtp, err := m.openLocked(rtpPort, nil)
	if err != nil {
		return nil, err
	}
	if rtpPort == 65535 {
		m.closeLocked(rtp)
		return nil, fmt.Errorf("%w: no RTCP port after %d", ErrPortRange, rtpPort)
	}
	rtcp, err := m.openLocked(rtpPort+1, nil)
	if err != nil {
		m.closeLocked(rtp)
		return nil, err
	}
	return &Pair{RTP: rtp, RTCP: rtcp}, nil
}

// allocLocked finds the next free port (n = 1) or even/odd pair (n = 2),
// searching from where the previous allocation ended, so that a port just
// closed is the last to be handed out again (late datagrams of an ended
// call then find no one rather than the next call).
func (m *Manager) allocLocked(n int) (uint16, error) {
	if m.closed {
		return 0, ErrClosed
	}
	size := len(m.ports)
	for k := 0; k < size; k++ {
		i := (m.next + k) % size
		port := int(m.lo) + i
		if n == 2 && (port%2 != 0 || i+1 >= size) {
			continue
		}
		free := true
		for j := 0; j < n; j++ {
			if m.ports[i+j] != nil {
				free = false
			}
		}
		if free {
			m.next = (i + n) % size
			return uint16(port), nil
		}
	}
	what := "port"
	if n == 2 {
		what = "even/odd pair"
	}
	return 0, fmt.Errorf("%w: no free %s in %d-%d (%d of %d ports open)", ErrExhausted, what, m.lo, m.hi, m.open, size)
}

// openLocked registers port and opens it.
func (m *Manager) openLocked(port uint16, fn ReceiveFunc) (*Port, error) {
	if m.closed {
		return nil, ErrClosed
	}
	if !m.Contains(port) {
		return nil, fmt.Errorf("%w %d-%d: %d", ErrPortRange, m.lo, m.hi, port)
	}
	if m.ports[port-m.lo] != nil {
		return nil, fmt.Errorf("%w: %d is open already", ErrPortInUse, port)
	}
	p := &Port{m: m, port: port}
	p.local = m.primaryAddrPort(port)
	if fn == nil {
		// What readers wait on besides the ring: a port with a receive
		// function has nothing to read (a few hundred bytes less per port
		// of a full-range relay).
		p.rdCancel = make(chan struct{})
		var err error
		if p.ring, err = fastfilter.NewRing(m.ring); err != nil {
			return nil, err
		}
	}
	// Datagrams may arrive as soon as the port is registered: a write from
	// fn waits here until the port is set up.
	p.wmu.Lock()
	defer p.wmu.Unlock()
	var err error
	if p.ring != nil {
		// The filter copies into the ring directly, counting each
		// datagram without a locked instruction, and the ring wakes the
		// port's readers (Port.wait).
		p.reg, err = m.filter.RegisterRing(port, port, p.ring)
	} else {
		p.reg, err = m.filter.Register(port, port, func(d *fastfilter.Datagram) { fn(p, d) })
	}
	if err != nil {
		if errors.Is(err, fastfilter.ErrPortInUse) {
			return nil, fmt.Errorf("%w: %w", ErrPortInUse, err)
		}
		return nil, err
	}
	p.reg.SetAcceptBroadcast(m.bcast)
	p.tos = m.tos // its netstack endpoint, opened for the first send through netstack, gets it then
	m.ports[port-m.lo] = p
	m.open++
	return p, nil
}

// closeLocked closes a port opened under the same lock hold.
func (m *Manager) closeLocked(p *Port) {
	p.closed.Store(true)
	p.reg.Close()
	if p.ring != nil {
		p.ring.Close()
	}
	m.ports[p.port-m.lo] = nil
	m.open--
}

// release forgets a closed port and keeps its send counts.
func (m *Manager) release(p *Port) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ports[p.port-m.lo] == p {
		m.ports[p.port-m.lo] = nil
		m.open--
	}
	m.retired = m.retired.Add(p.sendStats())
}

// primaryAddrPort is what a port reports as its local address: the NIC's
// main IPv4 address, else its first global IPv6 address.
func (m *Manager) primaryAddrPort(port uint16) netip.AddrPort {
	ns := m.st.Netstack()
	if a, err := ns.GetMainNICAddress(m.nic, header.IPv4ProtocolNumber); err == nil && a.Address.Len() != 0 {
		return netip.AddrPortFrom(stack.AddrTo(a.Address), port)
	}
	if info, ok := ns.SingleNICInfo(m.nic); ok {
		for _, pa := range info.ProtocolAddresses {
			if a := stack.AddrTo(pa.AddressWithPrefix.Address); a.Is6() && !a.IsLinkLocalUnicast() {
				return netip.AddrPortFrom(a, port)
			}
		}
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), port)
}

// localAddrFor returns the source address netstack's route picks for dst
// on the manager's NIC: the address the port's netstack lane would send
// from, so both lanes agree.
func (m *Manager) localAddrFor(dst netip.Addr) (netip.Addr, error) {
	proto := header.IPv4ProtocolNumber
	if dst.Is6() {
		proto = header.IPv6ProtocolNumber
	}
	r, err := m.st.Netstack().FindRoute(m.nic, tcpip.Address{}, stack.AddrFrom(dst), proto, false)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("mediaport: no route to %s: %s", dst, err)
	}
	defer r.Release()
	return stack.AddrTo(r.LocalAddress()), nil
}

// keepEphemeralPortsOut narrows netstack's ephemeral port range (16000-65535
// by default) to its larger part outside [lo, hi], so that a netstack socket
// bound to port 0 never takes a media port: an idle media port has no
// netstack endpoint to reserve it (docs/design.md, decision 3). When no part
// of 1024 ports or more is left, the range stays as it is.
func keepEphemeralPortsOut(ns *tcpipstack.Stack, lo, hi uint16) {
	first, last := ns.PortRange()
	if hi < first || lo > last {
		return
	}
	const minEphemeral = 1024
	below, above := int(lo)-int(first), int(last)-int(hi)
	switch {
	case above >= below && above >= minEphemeral:
		_ = ns.SetPortRange(hi+1, last)
	case below >= minEphemeral:
		_ = ns.SetPortRange(first, lo-1)
	}
}
