package fastfilter

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Default bounds of the registrable port range.
const (
	DefaultPortMin = 10000
	DefaultPortMax = 60000
)

// DefaultAddressRefresh is how often the filter re-reads the NIC's addresses
// and MAC from netstack when Options.AddressRefresh is zero.
const DefaultAddressRefresh = time.Second

// Errors returned by Register and New (wrapped with details).
var (
	ErrPortInUse  = errors.New("fastfilter: port in use")
	ErrPortRange  = errors.New("fastfilter: port outside the registrable range")
	ErrClosed     = errors.New("fastfilter: closed")
	ErrNoReceiver = errors.New("fastfilter: nil ReceiveFunc")
)

// Options configure a Filter. Stack and NIC are required.
type Options struct {
	// Stack is the netstack stack the filtered link belongs to. The filter
	// reads the NIC's addresses and MAC from it (into a snapshot, never per
	// packet) and binds a UDP endpoint on every registered port.
	Stack *tcpipstack.Stack
	// NIC is the NIC whose link the filter hooks.
	NIC tcpip.NICID
	// Clock is what Datagram.ReceivedAt reads (default: Stack.Clock()).
	Clock tcpip.Clock
	// PortMin and PortMax bound the ports Register accepts, inclusive
	// (default DefaultPortMin..DefaultPortMax). The registry is an array
	// indexed by port - PortMin, 8 bytes per port.
	PortMin, PortMax uint16
	// UnboundUDP, when set, installs the filter's handler of the NIC's UDP
	// packets no netstack endpoint is bound to as netstack's default UDP
	// handler for the NIC (stack.Stack.SetUnboundUDP does; netstack allows
	// setting its own only before the stack runs), and is called with nil
	// at Close. The filter then opens a registered port's netstack
	// endpoint only when it is first asked for (NetstackEndpoint, the fast
	// sender's fallback), and until then receives the port's netstack lane
	// through the handler: an idle registered port costs the registry a
	// few hundred bytes instead of the endpoint's 5 KB (netstack's port
	// reservation, demultiplexer entry and endpoint). Register still
	// refuses a port a netstack socket holds, but a port without an
	// endpoint is not reserved in netstack: a netstack socket bound to it
	// explicitly later takes its netstack lane. nil: every registered port
	// gets its endpoint at Register.
	UnboundUDP func(func(tcpipstack.TransportEndpointID, *tcpipstack.PacketBuffer) bool)
	// AddressRefresh is how often the address snapshot is re-read from
	// netstack while frames arrive (default DefaultAddressRefresh;
	// negative: only at New, Register and RefreshAddresses). Until a
	// refresh, a new address is served by netstack's lane (slower, not
	// lost). A period without frames puts the refresh to sleep, so an idle
	// filter costs no wake-up; the next frame wakes it, and the refresh
	// follows within a period, as while busy.
	AddressRefresh time.Duration
}

// Filter is the fast receive path of one NIC: install Hook on the NIC's link
// (or Wrap the link), Register ports, and datagrams for them skip netstack.
type Filter struct {
	ns        *tcpipstack.Stack
	nic       tcpip.NICID
	clock     tcpip.Clock
	realClock bool // clock is netstack's real clock: see now
	portMin   uint16
	ports     []atomic.Pointer[portEntry] // indexed by port - portMin
	snap      atomic.Pointer[snapshot]
	snapAt    atomic.Int64 // when snap was read, in nanoseconds since monoBase
	subs      atomic.Pointer[[]neighborFunc]
	tooBig    atomic.Pointer[[]tooBigFunc] // neighbor.go
	closed    atomic.Bool
	regMu     sync.Mutex // serialises Register, Close, Counters and subscriptions
	regs      map[*Registration]struct{}
	refresh   time.Duration
	unbound   func(func(tcpipstack.TransportEndpointID, *tcpipstack.PacketBuffer) bool) // Options.UnboundUDP
	// The periodic refresh runs while frames arrive and sleeps when
	// none came for a whole period (an idle filter wakes nobody); the
	// first frame after that re-arms it.
	timerMu    sync.Mutex
	timer      tcpip.Timer
	timerArmed bool
	stopping   bool
	rxSeen     atomic.Bool // a frame came since the last periodic refresh

	// Each event is counted once, with one atomic add: in its port's set
	// when the port is known, else in shared. Counters sums shared, the
	// live and retiring ports' sets and retired, into which a port's
	// counts are folded a second after it is unregistered (when no frame
	// in flight can move them), so totals never go backwards.
	shared   counterSet
	retired  counterSet      // written under regMu
	retiring []retiringEntry // guarded by regMu
}

// snapshot is what the receive path needs to know about the NIC, swapped
// atomically as a whole so a frame sees one consistent version.
type snapshot struct {
	mac         [header.EthernetAddressSize]byte
	v4          [][header.IPv4AddressSize]byte
	v4bcast     [][header.IPv4AddressSize]byte // subnet broadcast addresses of v4
	v6          [][header.IPv6AddressSize]byte
	promiscuous bool
	rxOffload   bool // the link verified checksums (CapabilityRXChecksumOffload)

	// wallBase is time.Now() at the snapshot, used with the real clock.
	wallBase time.Time
}

// stdClockType is the type of netstack's real clock, whose Now is time.Now.
var stdClockType = reflect.TypeOf(tcpip.NewStdClock())

// now returns the receive time for a datagram. With the real clock it is
// the wall time at the snapshot plus the monotonic time since: one clock
// reading where time.Now takes two (about 25 ns each here), and wall clock
// steps show at the next snapshot (Options.AddressRefresh).
func (f *Filter) now(s *snapshot) time.Time {
	if f.realClock {
		return s.wallBase.Add(time.Since(s.wallBase))
	}
	return f.clock.Now()
}

func (s *snapshot) hasV4(a []byte) bool {
	k := [header.IPv4AddressSize]byte(a)
	for _, v := range s.v4 {
		if v == k {
			return true
		}
	}
	return false
}

func (s *snapshot) isV4Broadcast(a []byte) bool {
	k := [header.IPv4AddressSize]byte(a)
	for _, v := range s.v4bcast {
		if v == k {
			return true
		}
	}
	return false
}

func (s *snapshot) hasV6(a []byte) bool {
	k := [header.IPv6AddressSize]byte(a)
	for _, v := range s.v6 {
		if v == k {
			return true
		}
	}
	return false
}

// New validates opts, reads the NIC's addresses and returns a Filter. The
// filter does nothing until its Hook is installed on the link (or the link is
// wrapped with Wrap).
func New(opts Options) (*Filter, error) {
	if opts.Stack == nil {
		return nil, errors.New("fastfilter: Options.Stack is nil")
	}
	if !opts.Stack.HasNIC(opts.NIC) {
		return nil, fmt.Errorf("fastfilter: the stack has no NIC %d", opts.NIC)
	}
	if opts.PortMin == 0 && opts.PortMax == 0 {
		opts.PortMin, opts.PortMax = DefaultPortMin, DefaultPortMax
	}
	if opts.PortMin == 0 || opts.PortMin > opts.PortMax {
		return nil, fmt.Errorf("fastfilter: port range %d-%d is empty or includes port 0", opts.PortMin, opts.PortMax)
	}
	if opts.Clock == nil {
		opts.Clock = opts.Stack.Clock()
	}
	if opts.AddressRefresh == 0 {
		opts.AddressRefresh = DefaultAddressRefresh
	}
	f := &Filter{
		ns:        opts.Stack,
		nic:       opts.NIC,
		clock:     opts.Clock,
		realClock: reflect.TypeOf(opts.Clock) == stdClockType,
		portMin:   opts.PortMin,
		ports:     make([]atomic.Pointer[portEntry], int(opts.PortMax)-int(opts.PortMin)+1),
		regs:      make(map[*Registration]struct{}),
		refresh:   opts.AddressRefresh,
		unbound:   opts.UnboundUDP,
	}
	if err := f.RefreshAddresses(); err != nil {
		return nil, err
	}
	if f.unbound != nil {
		f.unbound(f.handleUnbound)
	}
	if f.refresh > 0 {
		f.timerMu.Lock()
		f.timer = f.clock.AfterFunc(f.refresh, f.periodicRefresh)
		f.timerArmed = true
		f.timerMu.Unlock()
	}
	return f, nil
}

// periodicRefresh re-reads the addresses, and arms itself again only if
// frames came during the period.
func (f *Filter) periodicRefresh() {
	_ = f.RefreshAddresses() // the NIC may be gone; the old snapshot stays
	f.timerMu.Lock()
	defer f.timerMu.Unlock()
	f.timerArmed = false
	if !f.stopping && f.rxSeen.Swap(false) {
		f.timerArmed = true
		f.timer.Reset(f.refresh)
	}
}

// noteFrame records that a frame came and wakes the periodic refresh if it
// sleeps. The hook calls it only while rxSeen is false: once per period.
func (f *Filter) noteFrame() {
	if !f.rxSeen.CompareAndSwap(false, true) || f.refresh <= 0 {
		return
	}
	f.timerMu.Lock()
	defer f.timerMu.Unlock()
	if !f.timerArmed && !f.stopping {
		f.timerArmed = true
		f.timer.Reset(f.refresh)
	}
}

// RefreshAddresses re-reads the NIC's MAC, addresses, promiscuous mode and
// checksum offload from netstack into the snapshot the receive path uses. It
// runs at New, at Register (unless it ran in the last 10 ms) and
// periodically (Options.AddressRefresh);
// call it after changing the NIC's addresses or MAC to take effect at once
// (until then, frames to a new MAC are dropped as not ours).
func (f *Filter) RefreshAddresses() error {
	info, ok := f.ns.SingleNICInfo(f.nic)
	if !ok {
		return fmt.Errorf("fastfilter: the stack has no NIC %d", f.nic)
	}
	s := &snapshot{
		promiscuous: info.Flags.Promiscuous,
		wallBase:    time.Now(),
	}
	copy(s.mac[:], info.LinkAddress)
	for _, pa := range info.ProtocolAddresses {
		a := pa.AddressWithPrefix.Address
		switch a.Len() {
		case header.IPv4AddressSize:
			s.v4 = append(s.v4, a.As4())
			if pa.AddressWithPrefix.PrefixLen < 31 {
				subnet := pa.AddressWithPrefix.Subnet()
				s.v4bcast = append(s.v4bcast, subnet.Broadcast().As4())
			}
		case header.IPv6AddressSize:
			s.v6 = append(s.v6, a.As16())
		}
	}
	if nic, err := f.ns.GetNICByID(f.nic); err == nil {
		s.rxOffload = nic.Capabilities()&tcpipstack.CapabilityRXChecksumOffload != 0
	}
	f.snap.Store(s)
	f.snapAt.Store(int64(time.Since(monoBase)))
	return nil
}

// monoBase is what Filter.snapAt counts from (monotonic time).
var monoBase = time.Now()

// registerRefreshEvery is how stale a snapshot Register takes without
// reading it again: opening ports one at a time (a full range is 64512)
// would otherwise read the NIC's addresses, a kilobyte of garbage, for
// each.
const registerRefreshEvery = 10 * time.Millisecond

// refreshForRegister refreshes the snapshot unless it is fresher than
// registerRefreshEvery.
func (f *Filter) refreshForRegister() {
	if time.Since(monoBase)-time.Duration(f.snapAt.Load()) >= registerRefreshEvery {
		_ = f.RefreshAddresses() // the NIC may be gone; the old snapshot stays
	}
}

// Close unregisters every registration and stops the periodic refresh. The
// hook then passes every frame on; remove it from the link as well.
func (f *Filter) Close() {
	f.timerMu.Lock()
	f.stopping = true
	if f.timer != nil {
		f.timer.Stop()
	}
	f.timerMu.Unlock()
	f.regMu.Lock()
	f.closed.Store(true)
	regs := make([]*Registration, 0, len(f.regs))
	for r := range f.regs {
		regs = append(regs, r)
	}
	f.regMu.Unlock()
	for _, r := range regs {
		r.Close()
	}
	if f.unbound != nil {
		f.unbound(nil)
	}
}

// PortRange returns the inclusive bounds of the registrable ports.
func (f *Filter) PortRange() (lo, hi uint16) {
	return f.portMin, f.portMin + uint16(len(f.ports)-1)
}

// Counters returns the filter's totals: every frame it saw, whatever port,
// registered now or before. It sums the ports' counters under the
// registration lock: call it for metrics, not per packet.
func (f *Filter) Counters() Counters {
	f.regMu.Lock()
	defer f.regMu.Unlock()
	f.expireRetiring(time.Now())
	c := f.shared.snapshot().Add(f.retired.snapshot())
	for r := range f.regs {
		for _, e := range r.entries {
			c = c.Add(e.counters.snapshot())
		}
	}
	for _, r := range f.retiring {
		c = c.Add(r.e.counters.snapshot())
	}
	return c
}

// retireGrace is how long an unregistered port's counters are watched for
// counts from frames that were being classified when it was unregistered:
// such a frame is done within microseconds. Real time, not Options.Clock:
// the frames in flight run in real time, and the grace changes no count,
// only when the filter forgets the port.
const retireGrace = time.Second

// retiringEntry is an unregistered port whose counters may still move.
type retiringEntry struct {
	e     *portEntry
	since time.Time
}

// retire queues e, just unregistered, and folds the counts of the ports
// retired longer than retireGrace ago into f.retired. Until then Counters
// reads a retiring port's counters as it reads a live one's. The queue is
// in retirement order and only its expired head is read, so unregistering
// n ports costs O(n), not O(n²). f.regMu must be held.
func (f *Filter) retire(e *portEntry) {
	now := time.Now()
	f.retiring = append(f.retiring, retiringEntry{e: e, since: now})
	f.expireRetiring(now)
}

// expireRetiring folds the counts of the entries retired longer than
// retireGrace ago into f.retired and forgets them. f.regMu must be held.
func (f *Filter) expireRetiring(now time.Time) {
	n := 0
	for n < len(f.retiring) && now.Sub(f.retiring[n].since) >= retireGrace {
		e := f.retiring[n].e
		for c := range e.counters {
			f.retired[c].Add(e.counters[c].Load())
		}
		n++
	}
	if n == 0 {
		return
	}
	clear(f.retiring[:n]) // let the entries go
	f.retiring = f.retiring[n:]
	if len(f.retiring) == 0 {
		f.retiring = nil // the emptied front is not reused by append
	}
}

// PortCounters returns the counters of a registered port, and false when the
// port is not registered.
func (f *Filter) PortCounters(port uint16) (Counters, bool) {
	e := f.lookup(port)
	if e == nil {
		return Counters{}, false
	}
	return e.counters.snapshot(), true
}

// lookup returns the live entry of port, or nil.
func (f *Filter) lookup(port uint16) *portEntry {
	i := uint(port) - uint(f.portMin) // wraps to a huge index below portMin
	if i >= uint(len(f.ports)) {
		return nil
	}
	return f.ports[i].Load()
}

// count adds one to counter c of port e, or of the filter when the port is
// not known (e is nil): one atomic add per event.
func (f *Filter) count(e *portEntry, c counter) {
	if e != nil {
		e.counters[c].Add(1)
		return
	}
	f.shared[c].Add(1)
}
