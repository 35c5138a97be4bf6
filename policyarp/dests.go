package policyarp

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// inlineDests is how many destinations a Slot holds in place, found by a
// scan of its cells; more go to the slot's hash set. Four covers a port
// sending to one peer (RTP), its RTCP twin's occasional second address, and
// small ICE or reflector fan-outs without a pointer chase.
const inlineDests = 4

// Slot is the table's cell for one local port: the port's set of
// destinations. Senders keep a *Slot and look their destination up on every
// datagram (Load, or Find and Dest.Load).
type Slot struct {
	inline [inlineDests]Dest
	more   atomic.Pointer[destSet] // destinations beyond inline; nil until needed

	mu     sync.Mutex // serialises writers; never held while calling netstack
	n      int32      // destinations held; an evicted one's index goes to its successor
	port   uint16
	armed  bool // aging timer pending
	queued bool // in the table's due list (Table.tickMu)
	timer  tcpip.Timer
	table  *Table
}

// Dest is one destination of a port: the cell its successive entries are
// published in. A Dest stays valid (readers may keep it) but may be reused
// for another destination once evicted, so always check the loaded entry's
// Dst.
//
// A Dest is kept small (a port holds four in place): what announcements
// need is kept in its Entry.
type Dest struct {
	entry atomic.Pointer[Entry]
	used  atomic.Bool // loaded since the last refresh round
	index int32       // the destination's number within the port, < Options.MaxDestinations
	slot  *Slot
	// lastUsed is the refresh round in which the destination was last seen
	// used (guarded by the slot's mu): least recently used goes first.
	lastUsed uint32
}

// Load returns the destination's current entry (nil if none) and marks it
// in use, so the refresh loop keeps it valid. It allocates nothing; the
// first Load after a refresh round also queues the destination's port for
// the next round (a lock, once per destination and round).
func (d *Dest) Load() *Entry {
	if !d.used.Load() && d.used.CompareAndSwap(false, true) {
		d.slot.table.noteUsed(d.slot)
	}
	return d.entry.Load()
}

// Peek returns the current entry without marking it in use.
func (d *Dest) Peek() *Entry { return d.entry.Load() }

// Index is the destination's number within its port, from 0 to the table's
// MaxDestinations-1: senders index per-destination state with it.
func (d *Dest) Index() int { return int(d.index) }

// destSet is an immutable open-addressing hash set of a port's overflow
// destinations, replaced whole (copy on write) when one is added or evicted,
// which is rare; entries are updated in their Dest without copying the set.
type destSet struct {
	cells []destCell // len a power of two, at least twice the destinations held
	shift uint       // 64 - log2(len(cells))
	all   []destCell
}

// destCell is an overflow destination and the address it is for (an
// overflow Dest is never reused for another).
type destCell struct {
	key tcpip.Address
	d   *Dest
}

func hashAddr(a tcpip.Address) uint64 {
	var x uint64
	if a.Len() == 4 {
		b := a.As4()
		x = uint64(binary.LittleEndian.Uint32(b[:]))
	} else {
		b := a.As16()
		x = binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	}
	return x * 0x9e3779b97f4a7c15
}

func (m *destSet) find(dst tcpip.Address) *Dest {
	mask := uint64(len(m.cells) - 1)
	for i := hashAddr(dst) >> m.shift; ; i = (i + 1) & mask {
		c := &m.cells[i]
		if c.d == nil || c.key == dst {
			return c.d
		}
	}
}

// newDestSet returns a set holding all.
func newDestSet(all []destCell) *destSet {
	size := 8
	for size < 2*len(all) {
		size *= 2
	}
	m := &destSet{cells: make([]destCell, size), shift: uint(64 - bits.TrailingZeros(uint(size))), all: all}
	mask := uint64(size - 1)
	for _, c := range all {
		i := hashAddr(c.key) >> m.shift
		for m.cells[i].d != nil {
			i = (i + 1) & mask
		}
		m.cells[i] = c
	}
	return m
}

// Find returns the port's destination dst, or nil when the port has none for
// it. Lock-free and allocation-free. The result is a hint: check the Dst of
// the entry it holds.
func (s *Slot) Find(dst tcpip.Address) *Dest {
	for i := range s.inline {
		d := &s.inline[i]
		if e := d.entry.Load(); e != nil && e.Dst == dst {
			return d
		}
	}
	if m := s.more.Load(); m != nil {
		return m.find(dst)
	}
	return nil
}

// Load returns the port's entry for dst (nil if none) and marks it in use,
// so the refresh loop keeps it valid. It takes no lock and allocates
// nothing.
func (s *Slot) Load(dst tcpip.Address) *Entry {
	if d := s.Find(dst); d != nil {
		if e := d.Load(); e != nil && e.Dst == dst {
			return e
		}
	}
	return nil
}

// Peek returns the port's entry for dst without marking it in use.
func (s *Slot) Peek(dst tcpip.Address) *Entry {
	if d := s.Find(dst); d != nil {
		if e := d.Peek(); e != nil && e.Dst == dst {
			return e
		}
	}
	return nil
}

// Port returns the slot's local port.
func (s *Slot) Port() uint16 { return s.port }

// Full reports whether the port holds as many destinations as the table
// allows: a new one evicts the least recently used.
func (s *Slot) Full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.n) >= s.table.maxDests
}

// each calls fn for every destination cell holding an entry.
func (s *Slot) each(fn func(d *Dest, e *Entry)) {
	for i := range s.inline {
		d := &s.inline[i]
		if e := d.entry.Load(); e != nil {
			fn(d, e)
		}
	}
	if m := s.more.Load(); m != nil {
		for _, c := range m.all {
			if e := c.d.entry.Load(); e != nil {
				fn(c.d, e)
			}
		}
	}
}

// claimLocked returns the cell for dst: its own, a free one, or the least
// recently used one's, evicted. The caller publishes dst's entry in it.
func (s *Slot) claimLocked(dst tcpip.Address, round uint32) *Dest {
	if d := s.Find(dst); d != nil {
		if e := d.entry.Load(); e != nil && e.Dst == dst {
			return d
		}
	}
	t := s.table
	if int(s.n) < t.maxDests {
		s.n++
		if s.n <= inlineDests {
			d := &s.inline[s.n-1]
			d.used.Store(false)
			d.lastUsed = round
			return d
		}
		d := &Dest{index: s.n - 1, lastUsed: round, slot: s}
		s.addOverflowLocked(destCell{dst, d}, nil)
		return d
	}
	// Full: evict the least recently used, preferring entries that cannot
	// be used anyway.
	var victim *Dest
	score := func(d *Dest, e *Entry) uint64 {
		if e.Usable() || e.State == Resolving {
			return uint64(d.lastUsed) + 1<<32
		}
		return uint64(d.lastUsed)
	}
	var best uint64
	s.each(func(d *Dest, e *Entry) {
		if sc := score(d, e); victim == nil || sc < best {
			victim, best = d, sc
		}
	})
	t.c.evictions.Add(1)
	if victim.index < inlineDests { // an inline cell: reuse it in place
		victim.used.Store(false)
		victim.lastUsed = round
		return victim
	}
	d := &Dest{index: victim.index, lastUsed: round, slot: s}
	t.countNextHops(victim.entry.Swap(nil), nil)
	s.addOverflowLocked(destCell{dst, d}, victim)
	return d
}

// addOverflowLocked publishes a new overflow set with c and without gone.
func (s *Slot) addOverflowLocked(c destCell, gone *Dest) {
	var all []destCell
	if m := s.more.Load(); m != nil {
		all = make([]destCell, 0, len(m.all)+1)
		for _, o := range m.all {
			if o.d != gone {
				all = append(all, o)
			}
		}
	}
	s.more.Store(newDestSet(append(all, c)))
}
