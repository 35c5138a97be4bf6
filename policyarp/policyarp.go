package policyarp

import (
	"errors"
	"fmt"
	"log/slog"
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

// Entry is one port's view of one of its destinations. Entries are
// immutable once published: every change publishes a new Entry, so a reader
// that loaded a pointer sees a consistent entry without a lock.
type Entry struct {
	Port      uint16
	Proto     tcpip.NetworkProtocolNumber
	Local     tcpip.Address     // source address the port sends from
	Dst       tcpip.Address     // destination of the datagrams
	NextHop   tcpip.Address     // Dst when on-link, else the gateway
	MAC       tcpip.LinkAddress // next hop's MAC; empty until resolved
	State     State
	Refreshed tcpip.MonotonicTime // when netstack last confirmed MAC (or the entry was made)
	// PathMTU is the largest IP packet the path to Dst takes, learnt from
	// an ICMP "fragmentation needed" or "packet too big" (HandlePacketTooBig);
	// 0 when nothing lowered it below the link MTU. It expires
	// Options.PathMTUExpiry after it was learnt (PathMTUExpires).
	PathMTU        uint32
	PathMTUExpires tcpip.MonotonicTime
	// Index is the destination's number within the port (Dest.Index).
	Index int

	gen   uint64            // which Resolve made it; resolution callbacks of older ones are ignored
	prior tcpip.LinkAddress // the MAC the destination had before this entry, to count changes
	why   MACChangeReason   // what made the entry look the MAC up (resolve, refresh, an announcement)
	// announced is when an announcement last invalidated the destination
	// (see Options.AnnounceInterval); deferred holds the MAC of one held
	// back since, to be looked at when the interval ends.
	announced tcpip.MonotonicTime
	deferred  tcpip.LinkAddress
}

// Usable reports whether the entry may be used for a fast send.
func (e *Entry) Usable() bool { return e.State == Valid || e.State == Static }

func (e *Entry) String() string {
	s := fmt.Sprintf("port %d → %s via %s mac %s %s", e.Port, e.Dst, e.NextHop, e.MAC, e.State)
	if e.PathMTU != 0 {
		s += fmt.Sprintf(" path mtu %d", e.PathMTU)
	}
	return s
}

// Defaults of the Options about destination sets, announcements and path
// MTU.
const (
	// DefaultMaxDestinations bounds a port's destinations: an SFU or ICE
	// mux port fanning out to that many peers in turn stays on the fast
	// path; one more evicts the least recently used.
	DefaultMaxDestinations = 64
	// DefaultAnnounceInterval is the least time between two invalidations
	// of a destination by neighbour announcements (see HandleNeighborUpdate).
	DefaultAnnounceInterval = time.Second
	// DefaultPathMTUExpiry is how long a lowered path MTU holds: Linux's
	// net.ipv4.route.mtu_expires (10 minutes).
	DefaultPathMTUExpiry = 10 * time.Minute
)

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
	// MaxDestinations bounds each port's set of destinations (default
	// DefaultMaxDestinations, at most 65536).
	MaxDestinations int
	// AnnounceInterval is the least time between two invalidations of one
	// destination by gratuitous ARP or unsolicited NA (default
	// DefaultAnnounceInterval): a flood of announcements costs each
	// destination at most one fallback per interval.
	AnnounceInterval time.Duration
	// PathMTUExpiry is how long a path MTU learnt from ICMP holds (default
	// DefaultPathMTUExpiry).
	PathMTUExpiry time.Duration
	// Logger receives one info line per neighbour MAC change the fast path
	// follows (old and new MAC, why). nil: no logs.
	Logger *slog.Logger
}

// Stats count what the table did. Snapshot with Table.Stats.
type Stats struct {
	Resolutions uint64 // entries made by Resolve (first use, new destination, after aging...)
	Resolved    uint64 // times netstack answered with a MAC (resolutions and refreshes)
	Refreshes   uint64 // re-validations of entries in use
	// RefreshRounds counts the refresh timer's rounds: one per
	// Options.Refresh while destinations are in use (or a lowered path MTU
	// waits to expire), none while the table is idle.
	RefreshRounds   uint64
	MACChanges      uint64 // entries whose MAC changed: the sum of MACChangesBy
	Aged            uint64 // entries that reached the aging time
	Invalidations   uint64 // entries invalidated by neighbour updates (GARP / unsolicited NA)
	NeighborFlushes uint64 // netstack neighbours removed because an update announced another MAC
	Failures        uint64 // resolutions netstack reported as failed
	Evictions       uint64 // destinations evicted from a full port set
	// Announcements counts the neighbour announcements about a next hop in
	// use, by what they did: Same announced the MAC already known (nothing
	// done), Deferred came within AnnounceInterval of the last
	// invalidation (acted upon once, when it ends).
	AnnouncedSame, AnnounceDeferred uint64
	// PathMTUUpdates counts destinations whose path MTU an ICMP error
	// lowered; PathMTUIgnored the ICMP errors ignored (below the
	// protocol's minimum MTU, not lower than what is known, or for no
	// destination of the port); PathMTUExpired the lowered MTUs that
	// expired.
	PathMTUUpdates, PathMTUIgnored, PathMTUExpired uint64
	// MACChangesBy counts MAC changes by what revealed them.
	MACChangesBy [NumMACChangeReasons]uint64
}

type counters struct {
	resolutions, resolved, refreshes, aged, invalidations, flushes, failures, evictions atomic.Uint64
	announcedSame, announceDeferred                                                     atomic.Uint64
	pmtuUpdates, pmtuIgnored, pmtuExpired                                               atomic.Uint64
	macChanges                                                                          [NumMACChangeReasons]atomic.Uint64
}

// Table is the policy ARP table of one port range on one NIC.
type Table struct {
	ns         *tcpipstack.Stack
	nic        tcpip.NICID
	clock      tcpip.Clock
	base       uint16
	aging      time.Duration
	refresh    time.Duration
	announce   time.Duration
	pmtuExpiry time.Duration
	maxDests   int
	log        *slog.Logger
	slots      []Slot
	gen        atomic.Uint64
	round      atomic.Uint32 // refresh rounds so far
	closed     atomic.Bool

	staticMu sync.Mutex
	static   map[tcpip.Address]tcpip.LinkAddress

	// The refresh timer runs only while there is work: destinations used
	// since the last round (due, queued by Dest.Load the first time it
	// marks one used), or a lowered path MTU to expire. Idle, with any
	// number of ports, the table wakes nobody.
	tickMu     sync.Mutex
	ticker     tcpip.Timer
	tickArmed  bool
	due        []*Slot // slots with a destination used since the last round
	dueSpare   []*Slot
	walkAll    bool          // a lowered path MTU may be waiting to expire: rounds visit every slot
	pmtuLowers atomic.Uint64 // path MTUs lowered so far

	hopsMu sync.Mutex
	hops   map[tcpip.Address]int // entries per next hop: announcements for others cost no scan

	flushMu sync.Mutex
	flushed map[tcpip.Address]tcpip.MonotonicTime // per next hop, the last flush of netstack's entry
	same    map[tcpip.Address]sameAnnouncement    // per next hop, the last announcement of the known MAC
	windows map[tcpip.Address]*announceWindow     // per next hop, since the last announcement that found a change

	logMu    sync.Mutex
	lastLogs map[tcpip.Address][2]tcpip.LinkAddress // per next hop, the last change logged

	c counters
}

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
	if opts.MaxDestinations == 0 {
		opts.MaxDestinations = DefaultMaxDestinations
	}
	if opts.AnnounceInterval == 0 {
		opts.AnnounceInterval = DefaultAnnounceInterval
	}
	if opts.PathMTUExpiry == 0 {
		opts.PathMTUExpiry = DefaultPathMTUExpiry
	}
	if opts.Aging < 0 || opts.Refresh < 0 || opts.AnnounceInterval < 0 || opts.PathMTUExpiry < 0 {
		return nil, errors.New("policyarp: negative aging, refresh, announcement or path MTU interval")
	}
	if opts.MaxDestinations < 1 || opts.MaxDestinations > 1<<16 {
		return nil, fmt.Errorf("policyarp: MaxDestinations %d outside [1, 65536]", opts.MaxDestinations)
	}
	if opts.Refresh >= opts.Aging {
		return nil, fmt.Errorf("policyarp: refresh interval %v must be shorter than the aging time %v, or active entries age between refreshes", opts.Refresh, opts.Aging)
	}
	if opts.Clock == nil {
		opts.Clock = opts.Stack.Clock()
	}
	t := &Table{
		ns:         opts.Stack,
		nic:        opts.NIC,
		clock:      opts.Clock,
		base:       opts.BasePort,
		aging:      opts.Aging,
		refresh:    opts.Refresh,
		announce:   opts.AnnounceInterval,
		pmtuExpiry: opts.PathMTUExpiry,
		maxDests:   opts.MaxDestinations,
		log:        opts.Logger,
		slots:      make([]Slot, opts.Ports),
		static:     make(map[tcpip.Address]tcpip.LinkAddress),
		lastLogs:   make(map[tcpip.Address][2]tcpip.LinkAddress),
		flushed:    make(map[tcpip.Address]tcpip.MonotonicTime),
		hops:       make(map[tcpip.Address]int),
		same:       make(map[tcpip.Address]sameAnnouncement),
		windows:    make(map[tcpip.Address]*announceWindow),
	}
	for i := range t.slots {
		s := &t.slots[i]
		s.table = t
		s.port = opts.BasePort + uint16(i)
		for j := range s.inline {
			s.inline[j].index = int32(j)
			s.inline[j].slot = s
		}
	}
	t.tickMu.Lock()
	t.ticker = t.clock.AfterFunc(t.refresh, t.refreshRound)
	t.ticker.Stop() // armed by the first use (noteUsed)
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

// MaxDestinations returns the bound of each port's destination set: every
// Dest.Index is below it.
func (t *Table) MaxDestinations() int { return t.maxDests }

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
	e := s.Load(dst)
	if e == nil || !e.Usable() {
		return "", false
	}
	return e.MAC, true
}

// Resolve makes port's entry for sending from local to dst, unless a usable
// or pending one exists already, and asks netstack for the next hop's MAC.
// When netstack knows it, the returned entry is Valid at once (the datagram
// that needed it can go fast); otherwise it is Resolving and netstack's
// answer fills it in. The datagram that needed the entry should go through
// netstack meanwhile (which queues it behind the same resolution). A port
// holding Options.MaxDestinations destinations evicts its least recently
// used one to make room.
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
	if cur := s.Peek(dst); cur != nil && cur.Local == local {
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
		why:       ResolveChange,
	}
	nextHop, ok := t.nextHop(local, dst, proto)
	if !ok {
		e.State = Unsupported
		t.publishNew(s, e)
		return e, nil
	}
	e.NextHop = nextHop
	t.staticMu.Lock()
	mac, static := t.static[nextHop]
	t.staticMu.Unlock()
	if static {
		e.MAC, e.State = mac, Static
		t.publishNew(s, e)
		return e, nil
	}
	e.State = Resolving
	d := t.publishNew(s, e)
	switch err := t.ns.GetLinkAddress(t.nic, nextHop, local, proto, t.onResolved(s, d, e.gen)); err.(type) {
	case nil, *tcpip.ErrWouldBlock:
		// The callback has run already, or runs when netstack knows.
	default:
		t.fail(s, d, e.gen)
	}
	if cur := d.entry.Load(); cur != nil && cur.gen == e.gen {
		return cur, nil
	}
	return e, nil
}

// publishNew claims e.Dst's cell in s (evicting if need be), carries over
// what the destination's previous entry knew (path MTU, MAC, why it was
// invalidated) and publishes e there.
func (t *Table) publishNew(s *Slot, e *Entry) *Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.claimLocked(e.Dst, t.round.Load())
	if prev := d.entry.Load(); prev != nil && prev.Dst == e.Dst {
		e.PathMTU, e.PathMTUExpires = prev.PathMTU, prev.PathMTUExpires
		e.announced, e.deferred = prev.announced, prev.deferred
		e.prior = prev.MAC
		if prev.MAC == "" {
			e.prior = prev.prior
		}
		if prev.State == Invalidated {
			e.why = prev.why
		}
	}
	e.Index = int(d.index)
	t.publishLocked(s, d, e)
	return d
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
// of destination d of slot s. netstack may call it from under its
// neighbour-entry lock, so it must only touch the slot.
func (t *Table) onResolved(s *Slot, d *Dest, gen uint64) func(tcpipstack.LinkResolutionResult) {
	return func(res tcpipstack.LinkResolutionResult) {
		s.mu.Lock()
		defer s.mu.Unlock()
		cur := d.entry.Load()
		if cur == nil || cur.gen != gen || (cur.State != Resolving && cur.State != Valid) {
			return // superseded, evicted, invalidated or aged meanwhile
		}
		n := *cur
		n.Refreshed = t.clock.NowMonotonic()
		if res.Err != nil {
			n.State = Failed
			t.c.failures.Add(1)
		} else {
			old := cur.MAC
			if old == "" {
				old = cur.prior
			}
			why := cur.why
			if cur.State == Valid {
				why = RefreshChange
			}
			if old != "" && old != res.LinkAddress {
				t.macChanged(&n, old, res.LinkAddress, why)
			}
			n.MAC, n.State, n.prior, n.why = res.LinkAddress, Valid, "", RefreshChange
			t.c.resolved.Add(1)
		}
		t.publishLocked(s, d, &n)
	}
}

func (t *Table) fail(s *Slot, d *Dest, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := d.entry.Load(); cur != nil && cur.gen == gen && cur.State == Resolving {
		n := *cur
		n.State = Failed
		t.c.failures.Add(1)
		t.publishLocked(s, d, &n)
	}
}

// publishLocked stores e in d and makes sure the slot's aging timer runs
// while it holds a non-static entry.
func (t *Table) publishLocked(s *Slot, d *Dest, e *Entry) {
	if old := d.entry.Swap(e); old == nil || old.NextHop != e.NextHop {
		t.countNextHops(old, e)
	}
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

// age runs from the slot's aging timer: entries netstack has not confirmed
// for Aging become Aged; the timer is re-armed for the youngest of the rest.
func (t *Table) age(s *Slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if t.closed.Load() {
		return
	}
	now := t.clock.NowMonotonic()
	next := time.Duration(-1)
	s.each(func(d *Dest, e *Entry) {
		switch e.State {
		case Static, Aged, Invalidated:
			return
		}
		if age := now.Sub(e.Refreshed); age < t.aging {
			if left := t.aging - age; next < 0 || left < next {
				next = left
			}
			return
		}
		n := *e
		n.State = Aged
		d.entry.Store(&n)
		t.c.aged.Add(1)
	})
	if next >= 0 {
		s.armed = true
		s.timer.Reset(next)
	}
}

// noteUsed queues s for the next refresh round (a destination of s was
// just marked used) and arms the timer if it is not armed.
func (t *Table) noteUsed(s *Slot) {
	t.tickMu.Lock()
	defer t.tickMu.Unlock()
	if !s.queued {
		s.queued = true
		t.due = append(t.due, s)
	}
	t.armLocked()
}

// armLocked arms the refresh timer unless it is armed (t.tickMu held).
func (t *Table) armLocked() {
	if t.tickArmed || t.closed.Load() {
		return
	}
	t.tickArmed = true
	t.ticker.Reset(t.refresh)
}

// refreshRound re-validates every Valid entry used since the previous round
// (the slots Dest.Load queued) and expires lowered path MTUs. While a
// path MTU is lowered it visits every slot, as an entry not in use still
// expires; otherwise only the queued ones. The timer is re-armed only
// while there is such work, so an idle table costs nothing.
func (t *Table) refreshRound() {
	if t.closed.Load() {
		return
	}
	t.tickMu.Lock()
	t.tickArmed = false
	due := t.due
	t.due, t.dueSpare = t.dueSpare[:0], nil
	for _, s := range due {
		s.queued = false
	}
	walkAll := t.walkAll
	t.tickMu.Unlock()
	lowers := t.pmtuLowers.Load()

	round := t.round.Add(1)
	now := t.clock.NowMonotonic()
	lowered := false
	visit := func(s *Slot) {
		s.each(func(d *Dest, e *Entry) {
			if e.PathMTU != 0 {
				if now.Sub(e.PathMTUExpires) >= 0 {
					t.expirePathMTU(s, d, e)
				} else {
					lowered = true
				}
			}
			if !d.used.Load() {
				return
			}
			d.used.Store(false)
			s.mu.Lock()
			d.lastUsed = round
			s.mu.Unlock()
			if e.State == Valid {
				t.revalidate(s, d, e)
			}
		})
	}
	if walkAll {
		for i := range t.slots {
			visit(&t.slots[i])
		}
	} else {
		for _, s := range due {
			visit(s)
		}
	}
	clear(due)
	t.tickMu.Lock()
	t.dueSpare = due[:0]
	// A path MTU lowered during the walk (pmtuLowers moved) may have been
	// missed: keep walking everything one more round.
	t.walkAll = t.walkAll && (lowered || t.pmtuLowers.Load() != lowers || !walkAll)
	if t.walkAll || len(t.due) > 0 {
		t.armLocked()
	}
	t.tickMu.Unlock()
}

// notePathMTULowered makes the refresh rounds visit every slot until no
// lowered path MTU is left to expire.
func (t *Table) notePathMTULowered() {
	t.pmtuLowers.Add(1)
	t.tickMu.Lock()
	defer t.tickMu.Unlock()
	t.walkAll = true
	t.armLocked()
}

// revalidate asks netstack for e's next hop again. A neighbour netstack
// still holds (REACHABLE, STALE, DELAY, PROBE) answers at once and refreshes
// the entry, with netstack's MAC; a STALE one also starts netstack's NUD
// probe, as a datagram sent through netstack would. A neighbour netstack has
// lost or found unreachable starts a new resolution, and the entry stops
// being used until it completes.
func (t *Table) revalidate(s *Slot, d *Dest, e *Entry) {
	t.c.refreshes.Add(1)
	switch err := t.ns.GetLinkAddress(t.nic, e.NextHop, e.Local, e.Proto, t.onResolved(s, d, e.gen)); err.(type) {
	case nil:
	case *tcpip.ErrWouldBlock:
		s.mu.Lock()
		if d.entry.Load() == e {
			n := *e
			n.State = Resolving
			n.Refreshed = t.clock.NowMonotonic()
			n.why = RefreshChange
			t.publishLocked(s, d, &n)
		}
		s.mu.Unlock()
	default:
		t.fail(s, d, e.gen)
	}
}

// Invalidate makes every Valid entry whose next hop is ip unusable at once,
// so the next datagram to each destination goes through netstack and
// re-learns the MAC. Static entries are left alone. It returns how many were
// invalidated.
func (t *Table) Invalidate(ip tcpip.Address) int {
	return t.invalidate(ip, "", ResolveChange, false)
}

// invalidate is Invalidate, telling why (for the MAC change counts). With
// limit (an announcement of mac), a destination invalidated by an
// announcement less than AnnounceInterval ago is left alone until the
// interval ends, when the last announcement held back is looked at again.
func (t *Table) invalidate(ip tcpip.Address, mac tcpip.LinkAddress, why MACChangeReason, limit bool) int {
	n := 0
	var now tcpip.MonotonicTime
	if limit {
		now = t.clock.NowMonotonic()
	}
	t.forNextHop(ip, func(s *Slot, d *Dest, e *Entry) *Entry {
		if e.State != Valid {
			return nil
		}
		c := *e
		if limit && e.announced != (tcpip.MonotonicTime{}) && now.Sub(e.announced) < t.announce {
			if e.deferred != "" {
				return nil // one is held back already
			}
			t.c.announceDeferred.Add(1)
			t.clock.AfterFunc(t.announce-now.Sub(e.announced), func() { t.retryAnnouncement(s, d, ip) })
			c.deferred = mac
			if c.deferred == "" {
				c.deferred = unknownMAC
			}
			return &c
		}
		if limit {
			c.announced = now
		}
		c.State, c.why = Invalidated, why
		n++
		return &c
	})
	t.c.invalidations.Add(uint64(n))
	return n
}

// forNextHop replaces, under each slot's lock, the entries whose next hop is
// ip with what update returns (nil: leave it).
func (t *Table) forNextHop(ip tcpip.Address, update func(*Slot, *Dest, *Entry) *Entry) {
	for i := range t.slots {
		s := &t.slots[i]
		found := false
		s.each(func(_ *Dest, e *Entry) { found = found || e.NextHop == ip })
		if !found {
			continue
		}
		s.mu.Lock()
		s.each(func(d *Dest, e *Entry) {
			if e.NextHop == ip {
				if n := update(s, d, e); n != nil {
					t.publishLocked(s, d, n)
				}
			}
		})
		s.mu.Unlock()
	}
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
	t.forNextHop(ip, func(_ *Slot, _ *Dest, e *Entry) *Entry {
		n := *e
		if e.MAC != "" && e.MAC != mac {
			t.macChanged(&n, e.MAC, mac, StaticChange)
		}
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
	t.forNextHop(ip, func(_ *Slot, _ *Dest, e *Entry) *Entry {
		if e.State != Static {
			return nil
		}
		n := *e
		n.State = Invalidated
		return &n
	})
	return nil
}

// Snapshot returns a copy of every entry, in port order (a port's
// destinations in no particular order), for metrics and debugging.
func (t *Table) Snapshot() []Entry {
	var out []Entry
	for i := range t.slots {
		t.slots[i].each(func(_ *Dest, e *Entry) { out = append(out, *e) })
	}
	return out
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	st := Stats{
		Resolutions:      t.c.resolutions.Load(),
		Resolved:         t.c.resolved.Load(),
		Refreshes:        t.c.refreshes.Load(),
		RefreshRounds:    uint64(t.round.Load()),
		Aged:             t.c.aged.Load(),
		Invalidations:    t.c.invalidations.Load(),
		NeighborFlushes:  t.c.flushes.Load(),
		Failures:         t.c.failures.Load(),
		Evictions:        t.c.evictions.Load(),
		AnnouncedSame:    t.c.announcedSame.Load(),
		AnnounceDeferred: t.c.announceDeferred.Load(),
		PathMTUUpdates:   t.c.pmtuUpdates.Load(),
		PathMTUIgnored:   t.c.pmtuIgnored.Load(),
		PathMTUExpired:   t.c.pmtuExpired.Load(),
	}
	for i := range st.MACChangesBy {
		st.MACChangesBy[i] = t.c.macChanges[i].Load()
		st.MACChanges += st.MACChangesBy[i]
	}
	return st
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
