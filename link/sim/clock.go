package sim

import (
	"container/heap"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Epoch is the wall time a new Clock starts at. A fixed start keeps pcap
// timestamps (and anything else derived from Now) reproducible.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Clock is a deterministic tcpip.Clock for simulation. Time moves only when
// Advance is called; due timers then run one at a time on the caller's
// goroutine, ordered by due time and, for equal times, by the order in which
// they were scheduled. (netstack's faketime.ManualClock runs timers that are
// due at the same instant in map order, which is random.)
//
// After each timer callback the clock runs its settlers: functions that wait
// until the asynchronous work the callback caused is done (for a stack, its
// TCP processor goroutines). That keeps every event's consequences in order,
// so the same inputs give the same packet trace.
type Clock struct {
	mu       sync.Mutex
	elapsed  time.Duration
	seq      uint64
	timers   timerHeap
	settlers []func()
	running  bool
	fired    uint64
}

var _ tcpip.Clock = (*Clock)(nil)

// NewClock returns a Clock at Epoch.
func NewClock() *Clock { return &Clock{} }

// Now implements tcpip.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Epoch.Add(c.elapsed)
}

// NowMonotonic implements tcpip.Clock.
func (c *Clock) NowMonotonic() tcpip.MonotonicTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tcpip.MonotonicTime{}.Add(c.elapsed)
}

// Elapsed returns the simulated time since the clock was made.
func (c *Clock) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.elapsed
}

// AfterFunc implements tcpip.Clock. f runs from Advance, never from
// AfterFunc itself, even when d <= 0.
func (c *Clock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := &timer{clock: c, f: f}
	c.mu.Lock()
	c.scheduleLocked(t, d)
	c.mu.Unlock()
	return t
}

// AddSettler registers f to run after every timer callback and from Settle.
func (c *Clock) AddSettler(f func()) {
	c.mu.Lock()
	c.settlers = append(c.settlers, f)
	c.mu.Unlock()
}

// Settle runs every settler once.
func (c *Clock) Settle() {
	c.mu.Lock()
	settlers := c.settlers
	c.mu.Unlock()
	for _, s := range settlers {
		s()
	}
}

// Fired returns how many timer callbacks have run.
func (c *Clock) Fired() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fired
}

// Advance moves time forward by d, running every timer that falls due on the
// way (including ones the callbacks schedule within the window) in order.
// Advance(0) runs what is due now.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		panic("sim: Clock.Advance called from a timer callback")
	}
	c.running = true
	until := c.elapsed + d
	for c.timers.Len() > 0 && c.timers[0].when <= until {
		ent := heap.Pop(&c.timers).(timerEntry)
		t := ent.t
		if t.gen != ent.gen || !t.pending {
			continue // stopped or rescheduled since
		}
		t.pending = false
		c.elapsed = ent.when
		c.fired++
		c.mu.Unlock()
		t.f()
		c.Settle()
		c.mu.Lock()
	}
	c.elapsed = until
	c.running = false
	c.mu.Unlock()
}

// NextDue returns how long until the earliest pending timer, and false when
// none is pending.
func (c *Clock) NextDue() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.timers.Len() > 0 {
		ent := c.timers[0]
		if ent.t.gen == ent.gen && ent.t.pending {
			return ent.when - c.elapsed, true
		}
		heap.Pop(&c.timers)
	}
	return 0, false
}

func (c *Clock) scheduleLocked(t *timer, d time.Duration) {
	if d < 0 {
		d = 0
	}
	t.gen++
	t.pending = true
	c.seq++
	heap.Push(&c.timers, timerEntry{when: c.elapsed + d, seq: c.seq, t: t, gen: t.gen})
}

type timer struct {
	clock   *Clock
	f       func()
	gen     uint64 // bumped on every Reset and Stop; stale heap entries are skipped
	pending bool
}

// Stop implements tcpip.Timer.
func (t *timer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.pending
	t.pending = false
	t.gen++
	return was
}

// Reset implements tcpip.Timer.
func (t *timer) Reset(d time.Duration) {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	t.clock.scheduleLocked(t, d)
}

type timerEntry struct {
	when time.Duration
	seq  uint64
	t    *timer
	gen  uint64
}

type timerHeap []timerEntry

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when != h[j].when {
		return h[i].when < h[j].when
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
