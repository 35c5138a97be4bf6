package policyarp

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

const (
	// DefaultAging is how long an entry is trusted after netstack last
	// confirmed its MAC (see the package doc for the derivation).
	DefaultAging = 10 * time.Second
	// DefaultRefresh is how often entries in use are re-validated.
	DefaultRefresh = time.Second
)

// Errors returned by the Table.
var (
	ErrPortRange     = errors.New("policyarp: port outside the table's range")
	ErrAddressFamily = errors.New("policyarp: local and destination addresses are of different families or not IP addresses")
	ErrClosed        = errors.New("policyarp: table closed")
)

// State is where an entry stands. Only Valid and Static entries may be used
// for a fast send.
type State uint8

const (
	// Resolving: netstack is resolving the next hop's MAC.
	Resolving State = iota
	// Valid: netstack gave the MAC and the entry is younger than the aging time.
	Valid
	// Static: the next hop is a static neighbour (SetStatic); never ages.
	Static
	// Aged: nobody re-validated the entry within the aging time.
	Aged
	// Invalidated: a gratuitous ARP or unsolicited NA named the next hop.
	Invalidated
	// Failed: netstack's resolution of the next hop failed.
	Failed
	// Unsupported: the destination cannot take the fast path (no route via
	// this NIC, multicast, broadcast, or one of our own addresses).
	Unsupported
)

var stateNames = [...]string{"resolving", "valid", "static", "aged", "invalidated", "failed", "unsupported"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Entry is one port's view of its destination. Entries are immutable once
// published: every change publishes a new Entry, so a reader that loaded a
// pointer sees a consistent entry without a lock.
type Entry struct {
	Port      uint16
	Proto     tcpip.NetworkProtocolNumber
	Local     tcpip.Address     // source address the port sends from
	Dst       tcpip.Address     // destination of the datagrams
	NextHop   tcpip.Address     // Dst when on-link, else the gateway
	MAC       tcpip.LinkAddress // next hop's MAC; empty until resolved
	State     State
	Refreshed tcpip.MonotonicTime // when netstack last confirmed MAC (or the entry was made)

	gen uint64 // which Resolve made it; resolution callbacks of older ones are ignored
}

// Usable reports whether the entry may be used for a fast send.
func (e *Entry) Usable() bool { return e.State == Valid || e.State == Static }

func (e *Entry) String() string {
	return fmt.Sprintf("port %d → %s via %s mac %s %s", e.Port, e.Dst, e.NextHop, e.MAC, e.State)
}

// Options configure a Table.
type Options struct {
	// Stack is the netstack stack whose routes and neighbour cache the table
	// uses. Required.
	Stack *tcpipstack.Stack
	// NIC is the interface the fast path sends on. Required.
	NIC tcpip.NICID
	// BasePort is the first local port of the range; Ports its size (≥ 1).
	BasePort uint16
	Ports    int
	// Clock drives the aging and refresh timers (default: Stack.Clock()).
	Clock tcpip.Clock
	// Aging is how long an entry is trusted after netstack last confirmed its
	// MAC (default DefaultAging).
	Aging time.Duration
	// Refresh is how often entries in use are re-validated against
	// netstack's neighbour cache (default DefaultRefresh). Must be < Aging.
	Refresh time.Duration
}

// Stats count what the table did. Snapshot with Table.Stats.
type Stats struct {
	Resolutions     uint64 // entries made by Resolve (first use, new destination, after aging...)
	Resolved        uint64 // times netstack answered with a MAC (resolutions and refreshes)
	Refreshes       uint64 // re-validations of entries in use
	MACChanges      uint64 // re-validations that found a different MAC
	Aged            uint64 // entries that reached the aging time
	Invalidations   uint64 // entries invalidated by neighbour updates (GARP / unsolicited NA)
	NeighborFlushes uint64 // netstack neighbours removed because an update announced another MAC
	Failures        uint64 // resolutions netstack reported as failed
}

type counters struct {
	resolutions, resolved, refreshes, macChanges, aged, invalidations, flushes, failures atomic.Uint64
}

// Table is the policy ARP table of one port range on one NIC.
type Table struct {
	ns      *tcpipstack.Stack
	nic     tcpip.NICID
	clock   tcpip.Clock
	base    uint16
	aging   time.Duration
	refresh time.Duration
	slots   []Slot
	gen     atomic.Uint64
	closed  atomic.Bool

	staticMu sync.Mutex
	static   map[tcpip.Address]tcpip.LinkAddress

	tickMu sync.Mutex
	ticker tcpip.Timer

	c counters
}

// Slot is the table's cell for one local port. Senders keep a *Slot and call
// Load on every datagram.
type Slot struct {
	entry atomic.Pointer[Entry]
	used  atomic.Bool // loaded since the last refresh round

	mu    sync.Mutex // serialises writers; never held while calling netstack
	armed bool       // aging timer pending
	timer tcpip.Timer
	table *Table
	port  uint16
}

// Load returns the port's current entry (nil if none) and marks the slot in
// use, so the refresh loop keeps it valid. It takes no lock and allocates
// nothing.
func (s *Slot) Load() *Entry {
	if !s.used.Load() {
		s.used.Store(true)
	}
	return s.entry.Load()
}

// Peek returns the current entry without marking the slot in use.
func (s *Slot) Peek() *Entry { return s.entry.Load() }

// Port returns the slot's local port.
func (s *Slot) Port() uint16 { return s.port }

// New validates opts and returns a Table whose refresh loop runs on
// opts.Clock until Close.
func New(opts Options) (*Table, error) {
	if opts.Stack == nil {
		return nil, errors.New("policyarp: Options.Stack is nil")
	}
	if !opts.Stack.HasNIC(opts.NIC) {
		return nil, fmt.Errorf("policyarp: NIC %d does not exist", opts.NIC)
	}
	if opts.Ports < 1 || int(opts.BasePort)+opts.Ports > 1<<16 {
		return nil, fmt.Errorf("policyarp: port range %d+%d does not fit in [1, 65535]", opts.BasePort, opts.Ports)
	}
	if opts.BasePort == 0 {
		return nil, errors.New("policyarp: BasePort 0 is not a UDP port")
	}
	if opts.Aging == 0 {
		opts.Aging = DefaultAging
	}
	if opts.Refresh == 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Aging < 0 || opts.Refresh < 0 {
		return nil, errors.New("policyarp: negative aging or refresh interval")
	}
	if opts.Refresh >= opts.Aging {
		return nil, fmt.Errorf("policyarp: refresh interval %v must be shorter than the aging time %v, or active entries age between refreshes", opts.Refresh, opts.Aging)
	}
	if opts.Clock == nil {
		opts.Clock = opts.Stack.Clock()
	}
	t := &Table{
		ns:      opts.Stack,
		nic:     opts.NIC,
		clock:   opts.Clock,
		base:    opts.BasePort,
		aging:   opts.Aging,
		refresh: opts.Refresh,
		slots:   make([]Slot, opts.Ports),
		static:  make(map[tcpip.Address]tcpip.LinkAddress),
	}
	for i := range t.slots {
		t.slots[i].table = t
		t.slots[i].port = opts.BasePort + uint16(i)
	}
	t.tickMu.Lock()
	t.ticker = t.clock.AfterFunc(t.refresh, t.refreshRound)
	t.tickMu.Unlock()
	return t, nil
}

// Close stops the refresh loop and the aging timers. Entries stay readable
// but are no longer refreshed or aged.
func (t *Table) Close() {
	if t.closed.Swap(true) {
		return
	}
	t.tickMu.Lock()
	t.ticker.Stop()
	t.tickMu.Unlock()
	for i := range t.slots {
		s := &t.slots[i]
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.armed = false
		s.mu.Unlock()
	}
}

// NIC returns the NIC the table is for.
func (t *Table) NIC() tcpip.NICID { return t.nic }

// Stack returns the netstack stack the table uses.
func (t *Table) Stack() *tcpipstack.Stack { return t.ns }

// Aging and Refresh return the intervals in use.
func (t *Table) Aging() time.Duration   { return t.aging }
func (t *Table) Refresh() time.Duration { return t.refresh }

// Contains reports whether port is inside the table's range.
func (t *Table) Contains(port uint16) bool {
	return port >= t.base && int(port-t.base) < len(t.slots)
}

// Slot returns the slot of port, or nil when port is outside the range.
func (t *Table) Slot(port uint16) *Slot {
	if !t.Contains(port) {
		return nil
	}
	return &t.slots[port-t.base]
}

// Lookup returns the MAC to send port's datagram to dst with, if the entry is
// usable for dst. Lock-free and allocation-free; senders that keep a *Slot use
// Slot.Load directly.
func (t *Table) Lookup(port uint16, dst tcpip.Address) (tcpip.LinkAddress, bool) {
	s := t.Slot(port)
	if s == nil {
		return "", false
	}
	e := s.Load()
	if e == nil || e.Dst != dst || !e.Usable() {
		return "", false
	}
	return e.MAC, true
}

// Resolve makes port's entry for sending from local to dst, unless a usable
// or pending one exists already, and asks netstack for the next hop's MAC.
// When netstack knows it, the returned entry is Valid at once; otherwise it
// is Resolving and netstack's answer fills it in. The datagram that needed
// the entry should go through netstack meanwhile (which queues it behind the
// same resolution).
func (t *Table) Resolve(port uint16, local, dst tcpip.Address) (*Entry, error) {
	s := t.Slot(port)
	if s == nil {
		return nil, ErrPortRange
	}
	proto, ok := protocolOf(local, dst)
	if !ok {
		return nil, ErrAddressFamily
	}
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if cur := s.entry.Load(); cur != nil && cur.Dst == dst && cur.Local == local {
		switch cur.State {
		case Valid, Static, Resolving, Unsupported:
			return cur, nil
		}
	}
	t.c.resolutions.Add(1)
	e := &Entry{
		Port:      s.port,
		Proto:     proto,
		Local:     local,
		Dst:       dst,
		Refreshed: t.clock.NowMonotonic(),
		gen:       t.gen.Add(1),
	}
	nextHop, ok := t.nextHop(local, dst, proto)
	if !ok {
		e.State = Unsupported
		t.publish(s, e)
		return e, nil
	}
	e.NextHop = nextHop
	t.staticMu.Lock()
	mac, static := t.static[nextHop]
	t.staticMu.Unlock()
	if static {
		e.MAC, e.State = mac, Static
		t.publish(s, e)
		return e, nil
	}
	e.State = Resolving
	t.publish(s, e)
	switch err := t.ns.GetLinkAddress(t.nic, nextHop, local, proto, t.onResolved(s, e.gen)); err.(type) {
	case nil, *tcpip.ErrWouldBlock:
		// The callback has run already, or runs when netstack knows.
	default:
		t.fail(s, e.gen)
	}
	return s.entry.Load(), nil
}

// nextHop finds, once per entry, where frames for dst go: dst itself when it
// is on-link, else the gateway of netstack's route. Destinations the fast
// path cannot serve report false.
func (t *Table) nextHop(local, dst tcpip.Address, proto tcpip.NetworkProtocolNumber) (tcpip.Address, bool) {
	if header.IsV4MulticastAddress(dst) || header.IsV6MulticastAddress(dst) || dst == header.IPv4Broadcast ||
		header.IsV4LoopbackAddress(dst) || header.IsV6LoopbackAddress(dst) || dst.Unspecified() {
		return tcpip.Address{}, false
	}
	if t.ns.CheckLocalAddress(0, proto, dst) != 0 {
		return tcpip.Address{}, false // one of our own addresses
	}
	r, err := t.ns.FindRoute(t.nic, local, dst, proto, false)
	if err != nil {
		return tcpip.Address{}, false
	}
	defer r.Release()
	if r.NICID() != t.nic || r.Loop() != tcpipstack.PacketOut || r.LocalAddress() != local {
		return tcpip.Address{}, false
	}
	if nh := r.NextHop(); nh.BitLen() != 0 {
		return nh, true
	}
	// makeRoute resolves subnet-directed broadcasts statically; anything
	// already resolved without a neighbour entry is not a unicast peer.
	if r.RemoteLinkAddress() != "" {
		return tcpip.Address{}, false
	}
	return r.RemoteAddress(), true
}

// onResolved returns netstack's on-resolve callback for entry generation gen
// of slot s. netstack may call it from under its neighbour-entry lock, so it
// must only touch the slot.
func (t *Table) onResolved(s *Slot, gen uint64) func(tcpipstack.LinkResolutionResult) {
	return func(res tcpipstack.LinkResolutionResult) {
		s.mu.Lock()
		defer s.mu.Unlock()
		cur := s.entry.Load()
		if cur == nil || cur.gen != gen || (cur.State != Resolving && cur.State != Valid) {
			return // superseded, invalidated or aged meanwhile
		}
		n := *cur
		n.Refreshed = t.clock.NowMonotonic()
		if res.Err != nil {
			n.State = Failed
			t.c.failures.Add(1)
		} else {
			if cur.MAC != "" && cur.MAC != res.LinkAddress {
				t.c.macChanges.Add(1)
			}
			n.MAC, n.State = res.LinkAddress, Valid
			t.c.resolved.Add(1)
		}
		t.publishLocked(s, &n)
	}
}

func (t *Table) fail(s *Slot, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.entry.Load(); cur != nil && cur.gen == gen && cur.State == Resolving {
		n := *cur
		n.State = Failed
		t.c.failures.Add(1)
		t.publishLocked(s, &n)
	}
}

func (t *Table) publish(s *Slot, e *Entry) {
	s.mu.Lock()
	t.publishLocked(s, e)
	s.mu.Unlock()
}

// publishLocked stores e and makes sure the slot's aging timer runs while it
// holds a non-static entry.
func (t *Table) publishLocked(s *Slot, e *Entry) {
	s.entry.Store(e)
	if e.State == Static || s.armed || t.closed.Load() {
		return
	}
	s.armed = true
	if s.timer == nil {
		s.timer = t.clock.AfterFunc(t.aging, func() { t.age(s) })
	} else {
		s.timer.Reset(t.aging)
	}
}

// age runs from the slot's aging timer: an entry netstack has not confirmed
// for Aging becomes Aged; a younger one re-arms the timer for the rest.
func (t *Table) age(s *Slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if t.closed.Load() {
		return
	}
	e := s.entry.Load()
	if e == nil {
		return
	}
	switch e.State {
	case Static, Aged, Invalidated:
		return
	}
	if age := t.clock.NowMonotonic().Sub(e.Refreshed); age < t.aging {
		s.armed = true
		s.timer.Reset(t.aging - age)
		return
	}
	n := *e
	n.State = Aged
	s.entry.Store(&n)
	t.c.aged.Add(1)
}

// refreshRound re-validates every Valid entry used since the previous round.
func (t *Table) refreshRound() {
	if t.closed.Load() {
		return
	}
	for i := range t.slots {
		s := &t.slots[i]
		e := s.entry.Load()
		if e == nil || e.State != Valid || !s.used.Load() {
			continue
		}
		s.used.Store(false)
		t.revalidate(s, e)
	}
	t.tickMu.Lock()
	if !t.closed.Load() {
		t.ticker.Reset(t.refresh)
	}
	t.tickMu.Unlock()
}

// revalidate asks netstack for e's next hop again. A neighbour netstack
// still holds (REACHABLE, STALE, DELAY, PROBE) answers at once and refreshes
// the entry, with netstack's MAC; a STALE one also starts netstack's NUD
// probe, as a datagram sent through netstack would. A neighbour netstack has
// lost or found unreachable starts a new resolution, and the entry stops
// being used until it completes.
func (t *Table) revalidate(s *Slot, e *Entry) {
	t.c.refreshes.Add(1)
	switch err := t.ns.GetLinkAddress(t.nic, e.NextHop, e.Local, e.Proto, t.onResolved(s, e.gen)); err.(type) {
	case nil:
	case *tcpip.ErrWouldBlock:
		s.mu.Lock()
		if s.entry.Load() == e {
			n := *e
			n.State = Resolving
			n.Refreshed = t.clock.NowMonotonic()
			t.publishLocked(s, &n)
		}
		s.mu.Unlock()
	default:
		t.fail(s, e.gen)
	}
}

// Invalidate makes every Valid entry whose next hop is ip unusable at once,
// so the next datagram of each port goes through netstack and re-learns the
// MAC. Static entries are left alone. It returns how many were invalidated.
func (t *Table) Invalidate(ip tcpip.Address) int {
	n := 0
	for i := range t.slots {
		s := &t.slots[i]
		if e := s.entry.Load(); e == nil || e.NextHop != ip || e.State != Valid {
			continue
		}
		s.mu.Lock()
		if e := s.entry.Load(); e != nil && e.NextHop == ip && e.State == Valid {
			c := *e
			c.State = Invalidated
			s.entry.Store(&c)
			n++
		}
		s.mu.Unlock()
	}
	t.c.invalidations.Add(uint64(n))
	return n
}

// HandleNeighborUpdate is the hook fastfilter calls for a gratuitous ARP or
// an unsolicited Neighbor Advertisement announcing that ip is at mac
// (fastfilter.Filter.SubscribeNeighborUpdates). It never installs mac (the
// frame is unauthenticated): it invalidates every entry whose next hop is ip
// and, when netstack's neighbour cache holds a different MAC for ip (gVisor
// ignores gratuitous ARP requests and will not let a gratuitous reply
// override a cached MAC), removes netstack's dynamic entry so that the next
// datagram makes netstack resolve ip afresh. Updates for addresses no entry
// uses change nothing, in the table or in netstack. An empty mac means
// "unknown" and always removes netstack's entry.
//
// It is safe to call from a link's receive goroutine: it takes only short
// locks and never blocks on I/O.
func (t *Table) HandleNeighborUpdate(ip tcpip.Address, mac tcpip.LinkAddress) {
	proto, ok := protocolOf(ip, ip)
	if !ok || !t.usesNextHop(ip) {
		return
	}
	t.staticMu.Lock()
	_, static := t.static[ip]
	t.staticMu.Unlock()
	if static {
		return // fixed by configuration; announcements do not move it
	}
	// Flush netstack first, so that a sender re-resolving right after the
	// invalidation below cannot pick up the old MAC again.
	if nbrs, err := t.ns.Neighbors(t.nic, proto); err == nil {
		for _, n := range nbrs {
			if n.Addr != ip {
				continue
			}
			if n.State != tcpipstack.Static && (mac == "" || n.LinkAddr != mac) {
				if t.ns.RemoveNeighbor(t.nic, proto, ip) == nil {
					t.c.flushes.Add(1)
				}
			}
			break
		}
	}
	t.Invalidate(ip)
}

func (t *Table) usesNextHop(ip tcpip.Address) bool {
	for i := range t.slots {
		if e := t.slots[i].entry.Load(); e != nil && e.NextHop == ip {
			return true
		}
	}
	return false
}

// SetStatic fixes ip's MAC for peers that never change it: it adds a static
// neighbour to netstack (so netstack's own sends agree) and makes every entry
// whose next hop is ip, now or later, Static: never aged, refreshed or
// invalidated.
func (t *Table) SetStatic(ip tcpip.Address, mac tcpip.LinkAddress) error {
	proto, ok := protocolOf(ip, ip)
	if !ok {
		return ErrAddressFamily
	}
	if len(mac) != header.EthernetAddressSize {
		return fmt.Errorf("policyarp: MAC %q is not a 6-byte Ethernet address", mac)
	}
	if err := t.ns.AddStaticNeighbor(t.nic, proto, ip, mac); err != nil {
		return fmt.Errorf("policyarp: adding static neighbour %s: %s", ip, err)
	}
	t.staticMu.Lock()
	t.static[ip] = mac
	t.staticMu.Unlock()
	now := t.clock.NowMonotonic()
	t.forNextHop(ip, func(e *Entry) *Entry {
		n := *e
		n.MAC, n.State, n.Refreshed = mac, Static, now
		return &n
	})
	return nil
}

// RemoveStatic undoes SetStatic: netstack forgets the neighbour and entries
// using it go through netstack again, which resolves it.
func (t *Table) RemoveStatic(ip tcpip.Address) error {
	proto, ok := protocolOf(ip, ip)
	if !ok {
		return ErrAddressFamily
	}
	t.staticMu.Lock()
	_, had := t.static[ip]
	delete(t.static, ip)
	t.staticMu.Unlock()
	if !had {
		return fmt.Errorf("policyarp: %s is not a static neighbour", ip)
	}
	_ = t.ns.RemoveNeighbor(t.nic, proto, ip)
	t.forNextHop(ip, func(e *Entry) *Entry {
		if e.State != Static {
			return nil
		}
		n := *e
		n.State = Invalidated
		return &n
	})
	return nil
}

// forNextHop replaces, under each slot's lock, the entries whose next hop is
// ip with what update returns (nil: leave it).
func (t *Table) forNextHop(ip tcpip.Address, update func(*Entry) *Entry) {
	for i := range t.slots {
		s := &t.slots[i]
		if e := s.entry.Load(); e == nil || e.NextHop != ip {
			continue
		}
		s.mu.Lock()
		if e := s.entry.Load(); e != nil && e.NextHop == ip {
			if n := update(e); n != nil {
				t.publishLocked(s, n)
			}
		}
		s.mu.Unlock()
	}
}

// Snapshot returns a copy of every entry, in port order, for metrics and
// debugging.
func (t *Table) Snapshot() []Entry {
	var out []Entry
	for i := range t.slots {
		if e := t.slots[i].entry.Load(); e != nil {
			out = append(out, *e)
		}
	}
	return out
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	return Stats{
		Resolutions:     t.c.resolutions.Load(),
		Resolved:        t.c.resolved.Load(),
		Refreshes:       t.c.refreshes.Load(),
		MACChanges:      t.c.macChanges.Load(),
		Aged:            t.c.aged.Load(),
		Invalidations:   t.c.invalidations.Load(),
		NeighborFlushes: t.c.flushes.Load(),
		Failures:        t.c.failures.Load(),
	}
}

// protocolOf returns the network protocol of a pair of addresses of the same
// family.
func protocolOf(a, b tcpip.Address) (tcpip.NetworkProtocolNumber, bool) {
	switch {
	case a.Len() == header.IPv4AddressSize && b.Len() == header.IPv4AddressSize:
		return header.IPv4ProtocolNumber, true
	case a.Len() == header.IPv6AddressSize && b.Len() == header.IPv6AddressSize:
		return header.IPv6ProtocolNumber, true
	default:
		return 0, false
	}
}
