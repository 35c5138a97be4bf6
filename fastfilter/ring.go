package fastfilter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mediastack/mediastack/internal/csum"
	"github.com/mediastack/mediastack/internal/relaxed"
)

// Default Ring sizes.
const (
	DefaultRingPackets  = 512
	DefaultRingSlotSize = 2048
)

// RingOptions configure a Ring.
type RingOptions struct {
	// Packets is how many datagrams the ring holds at most (default
	// DefaultRingPackets), rounded up to a power of two.
	Packets int
	// SlotSize is the room each datagram has in the ring's own memory
	// (default DefaultRingSlotSize, enough for any datagram of a 1500-byte
	// MTU). Larger datagrams (reassembled by netstack, jumbo frames) are
	// kept in a pooled buffer of their own: they cost an allocation now and
	// then, never a loss.
	SlotSize int
	// Timestamps makes the ring store each datagram's receive time
	// (Datagram.ReceivedAt) in PacketInfo.ReceivedAt, which stays zero
	// otherwise. It costs a clock read per datagram, about 30 ns here
	// (BenchmarkReceive/fasttimestamps): almost half of the fast path.
	// Jitter buffers and RTCP statistics need it; relays and plain readers
	// do not.
	Timestamps bool
}

// PacketInfo describes a datagram read from a Ring.
type PacketInfo struct {
	Src, Dst netip.AddrPort
	Version  uint8
	// ReceivedAt is the receive time, with RingOptions.Timestamps; zero
	// without.
	ReceivedAt  time.Time
	ViaNetstack bool
	// Size is the datagram's length, more than the bytes read when the
	// caller's buffer was too small (the rest is discarded, as a UDP socket
	// does).
	Size int
}

// RingStats count what a Ring did.
type RingStats struct {
	Enqueued      uint64 // datagrams stored
	Read          uint64 // datagrams read by the application
	DroppedFull   uint64 // no room: the ring held Packets datagrams
	DroppedClosed uint64 // arrived after Close
	// DroppedBadChecksum counts datagrams whose UDP checksum, verified
	// while they were copied in, was wrong. They are never read, and not
	// counted in Enqueued or Read; the filter counts them too.
	DroppedBadChecksum uint64
	Len                int // datagrams held now
}

// Ring is the standard application buffer of the fast receive path: a
// bounded, packet-preserving queue of datagrams, one per port or per RTP/RTCP
// pair. Register it with Filter.RegisterRing (or its Receive method as a
// ReceiveFunc, a little slower); the application reads with Read, ReadPacket
// or ReadBatch, which block until a datagram is there or the deadline passes.
//
// The ring is a bounded queue with a sequence number per slot, after
// Dmitry Vyukov's: Receive never waits for a reader, and several receivers
// (links, the netstack lane) and several readers may use it at once.
// Receivers take turns, each for the copy of one datagram: one
// compare-and-swap takes the turn and the next slot, a release store gives
// the turn back (a lock bit in tail). Under it the receive counters, the
// ring's and the filter's count of the port's deliveries, have one writer
// and are updated with plain release stores (internal/relaxed), and the
// slot is handed to readers with one too. A reader claims a datagram with
// a compare-and-swap, a batch read the whole batch with one. So a datagram
// costs two locked instructions, where a lock-free claim plus an atomic
// count took three: a locked instruction costs about 20 cycles on recent
// Intel cores, fewer on AMD's (docs/design.md, "The receive path"). A
// datagram whose
// UDP checksum is still to be verified (the filter's fast lane) is verified
// in the same pass that copies it in, as Linux does for sockets
// (skb_copy_and_csum_datagram); one that fails keeps its slot, marked,
// until a reader skips it, and is never returned. When the ring is
// full the new datagram is dropped and counted (in RingStats and in the
// filter's Dropped.BufferFull). Payloads are copied into memory the ring
// allocates for its first datagram (so an idle ring, such as a media port
// nobody sends to, costs a few hundred bytes, not Packets × SlotSize); after
// that nothing is allocated per datagram on either side.
type Ring struct {
	// Set at NewRing.
	mem      atomic.Pointer[ringMemory] // nil until the first datagram
	memMu    sync.Mutex                 // serialises allocating mem
	mask     uint64                     // number of slots - 1
	slotSize int
	stamp    bool          // RingOptions.Timestamps
	wake     chan struct{} // a token when a reader may have work
	done     chan struct{} // closed by Close

	// Read by receivers for every datagram, written rarely.
	closed  atomic.Bool
	waiters atomic.Int32
	once    sync.Once // Close

	// The receivers' words and the readers' on cache lines of their own:
	// the link's goroutine advances tail while the application, usually
	// on another core, advances head.
	_ [cacheLineSize]byte
	// tail is the receivers' position, the datagrams claimed so far,
	// times two, plus tailLocked while a receiver has its turn. The words
	// after it are written by the receiver whose turn it is only, with
	// plain release stores (relaxed.AddSingleWriter), and read by anyone
	// with atomic loads: each is exact once the Receive that moved it has
	// returned.
	tail                       atomic.Uint64
	droppedFull, droppedClosed atomic.Uint64
	// Datagrams that failed the checksum verified during their copy (and
	// keep a slot until a reader skips it).
	discarded atomic.Uint64
	_         [cacheLineSize - 4*8]byte
	head      atomic.Uint64 // datagrams claimed by readers so far
	skipped   atomic.Uint64 // bad datagrams readers skipped (atomic adds: several readers)
	_         [cacheLineSize - 2*8]byte
}

// cacheLineSize is the distance that keeps two variables off each other's
// cache line, adjacent-line prefetch included.
const cacheLineSize = 128

// ringMemory is a ring's slots and payload room, allocated for its first
// datagram (Ring.memory).
type ringMemory struct {
	slots []ringSlot
	data  []byte // slot i's payload room: data[i*slotSize:][:slotSize]
}

type ringSlot struct {
	// seq is the slot's turn: i + k*len(slots) when free for the k-th lap
	// of receivers, one more once filled for the k-th lap of readers.
	seq  atomic.Uint64
	size int
	bad  bool    // failed its checksum: readers skip the slot
	big  *[]byte // the payload when larger than slotSize
	info PacketInfo
}

// bigPool holds buffers for datagrams larger than a ring's slots.
var bigPool = sync.Pool{New: func() any { return new([]byte) }}

// NewRing returns an empty Ring.
func NewRing(opts RingOptions) (*Ring, error) {
	if opts.Packets == 0 {
		opts.Packets = DefaultRingPackets
	}
	if opts.SlotSize == 0 {
		opts.SlotSize = DefaultRingSlotSize
	}
	if opts.Packets < 0 || opts.Packets > 1<<24 || opts.SlotSize < 0 || opts.SlotSize > 1<<16 {
		return nil, fmt.Errorf("fastfilter: ring of %d packets of %d bytes: want 1 to 16M packets of up to 64 KiB", opts.Packets, opts.SlotSize)
	}
	n := 1
	for n < opts.Packets {
		n <<= 1
	}
	return &Ring{
		mask:     uint64(n - 1),
		slotSize: opts.SlotSize,
		stamp:    opts.Timestamps,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}, nil
}

// memory returns the ring's slots and payload room, allocating them for
// the first datagram: after that, one load and a branch that always goes
// the same way.
func (r *Ring) memory() *ringMemory {
	if m := r.mem.Load(); m != nil {
		return m
	}
	return r.allocate()
}

func (r *Ring) allocate() *ringMemory {
	r.memMu.Lock()
	defer r.memMu.Unlock()
	if m := r.mem.Load(); m != nil {
		return m // another receiver was first
	}
	n := int(r.mask) + 1
	m := &ringMemory{slots: make([]ringSlot, n), data: make([]byte, n*r.slotSize)}
	for i := range m.slots {
		m.slots[i].seq.Store(uint64(i))
	}
	r.mem.Store(m)
	return m
}

// Receive is the ReceiveFunc that copies d into the ring:
// f.RegisterRing(lo, hi, ring) registers it. It never blocks.
func (r *Ring) Receive(d *Datagram) { r.receive(d, nil) }

// tailLocked is the bit of Ring.tail set while a receiver has its turn;
// the position is tail >> 1.
const tailLocked = 1

// receive is Receive that reports false when d's checksum, still to be
// verified (Datagram.verifyFrom), is wrong; d is then not queued. Once d
// passed, it adds one to delivered (when not nil), before a reader can see
// d: the filter's counter of the lane d came by, which so never counts a
// datagram that turns out bad. delivered is written during the receiver's
// turn only, with a plain release store: it must be a counter that only
// this ring's receivers write (a port registered with RegisterRing has this
// ring as its only receiver).
func (r *Ring) receive(d *Datagram, delivered *atomic.Uint64) bool {
	n := len(d.Payload)
	if n > r.slotSize && !d.checksumValid() {
		return false // verified before a slot is taken: no copy to verify in
	}
	m := r.memory()
	// lockTail's common case, inline: the turn free, the slot free.
	tl := r.tail.Load()
	t, res := tl>>1, pushed
	if tl&tailLocked != 0 || r.closed.Load() || m.slots[t&r.mask].seq.Load() != t ||
		!r.tail.CompareAndSwap(tl, (tl+2)|tailLocked) {
		t, res = r.lockTail(m)
	}
	if res != pushed {
		ok := d.checksumValid()
		if ok {
			addCount(delivered)
			if res == pushFull {
				relaxed.AddSingleWriter(&r.droppedFull, 1)
			} else {
				relaxed.AddSingleWriter(&r.droppedClosed, 1)
			}
		}
		relaxed.StoreRelease(&r.tail, t<<1) // the turn handed on, nothing claimed
		if ok && res == pushFull {
			d.ReportBufferFull()
		}
		return ok
	}
	s := &m.slots[t&r.mask]
	if n <= r.slotSize {
		i := int(t&r.mask) * r.slotSize
		if !d.verify {
			copy(m.data[i:i+n], d.Payload)
		} else if csum.Copy(m.data[i:i+n], d.Payload, d.partialSum) != 0xffff {
			// The slot is claimed: hand it over marked, for readers to
			// skip.
			s.bad = true
			relaxed.AddSingleWriter(&r.discarded, 1)
			res = pushBadChecksum
		}
	} else {
		b := bigPool.Get().(*[]byte)
		*b = append((*b)[:0], d.Payload...)
		s.big = b
	}
	if res == pushed {
		s.size = n
		// Field by field: a composite literal is built on the stack first.
		s.info.Src = d.Src
		s.info.Dst = d.Dst
		s.info.Version = d.Version
		s.info.ViaNetstack = d.ViaNetstack
		if r.stamp {
			s.info.ReceivedAt = d.ReceivedAt()
		}
		addCount(delivered)
	}
	relaxed.StoreRelease(&s.seq, t+1)       // hands the slot to readers
	relaxed.StoreRelease(&r.tail, (t+1)<<1) // and the turn to the next receiver
	// A failed datagram's slot is handed over too: a reader that woke for
	// a later slot and found this one still being copied waits for it.
	// The compare-and-swap that took the turn comes before this load: see
	// wait.
	if r.waiters.Load() > 0 {
		r.signal()
	}
	return res == pushed
}

// lockTail takes the receivers' turn and returns the position of the next
// slot: claimed with the turn (pushed) when it is free, else not (pushFull,
// pushClosed). One compare-and-swap; a receiver that finds the turn taken
// yields until it is handed on, which takes the copy of one datagram. The
// caller hands it on with a release store of the new position. receive
// tries its common case inline first.
func (r *Ring) lockTail(m *ringMemory) (uint64, pushResult) {
	for {
		t := r.tail.Load()
		if t&tailLocked != 0 {
			runtime.Gosched()
			continue
		}
		pos, res, next := t>>1, pushed, (t+2)|tailLocked
		switch {
		case r.closed.Load():
			res, next = pushClosed, t|tailLocked
		case m.slots[pos&r.mask].seq.Load() != pos: // the slot a lap back is still held
			res, next = pushFull, t|tailLocked
		}
		if r.tail.CompareAndSwap(t, next) {
			return pos, res
		}
	}
}

// tailPos returns the receivers' position: the datagrams claimed so far.
func (r *Ring) tailPos() uint64 { return r.tail.Load() >> 1 }

func addCount(c *atomic.Uint64) {
	if c != nil {
		relaxed.AddSingleWriter(c, 1)
	}
}

type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushClosed
	pushBadChecksum
)

// claim takes up to max (at least 1) consecutive filled slots, oldest first,
// with one atomic operation, and returns the position of the first and how
// many it took: none when the ring is empty. The caller copies them out and
// releases each.
func (r *Ring) claim(max int) (first uint64, k int) {
	m := r.mem.Load()
	if m == nil {
		return 0, 0 // no datagram yet
	}
	for {
		h := r.head.Load()
		seq := m.slots[h&r.mask].seq.Load()
		if seq != h+1 {
			if int64(seq-(h+1)) < 0 {
				return h, 0 // not filled yet: empty
			}
			continue // another reader took h
		}
		k = 1
		for k < max && m.slots[(h+uint64(k))&r.mask].seq.Load() == h+uint64(k)+1 {
			k++
		}
		// No other reader took h (head is still h), so none took the
		// slots after it either: they stay filled until released.
		if r.head.CompareAndSwap(h, h+uint64(k)) {
			return h, k
		}
	}
}

// take copies the payload of the claimed datagram at position pos into buf
// and returns the bytes copied and its slot, whose info the caller reads
// before it calls release.
func (r *Ring) take(pos uint64, buf []byte) (int, *ringSlot) {
	m := r.mem.Load() // set: pos was claimed
	s := &m.slots[pos&r.mask]
	if b := s.big; b != nil {
		n := copy(buf, *b)
		s.big = nil
		bigPool.Put(b)
		return n, s
	}
	i := int(pos&r.mask) * r.slotSize
	return copy(buf, m.data[i:i+s.size]), s
}

// release hands the slot at position pos to the receivers' next lap.
func (r *Ring) release(s *ringSlot, pos uint64) { relaxed.StoreRelease(&s.seq, pos+r.mask+1) }

// skipBad releases the claimed slot at pos and reports true when it holds a
// datagram that failed its checksum.
func (r *Ring) skipBad(pos uint64) bool {
	s := &r.mem.Load().slots[pos&r.mask] // set: pos was claimed
	if !s.bad {
		return false
	}
	s.bad = false
	r.skipped.Add(1)
	r.release(s, pos)
	return true
}

// inFlight reports whether a receiver may be copying a datagram in: it
// has its turn, or claimed a slot not handed over yet.
func (r *Ring) inFlight() bool {
	t := r.tail.Load()
	return t&tailLocked != 0 || t>>1 != r.head.Load()
}

// available reports whether the oldest slot is filled.
func (r *Ring) available() bool {
	m := r.mem.Load()
	if m == nil {
		return false
	}
	h := r.head.Load()
	return m.slots[h&r.mask].seq.Load() == h+1
}

func (r *Ring) signal() {
	select {
	case r.wake <- struct{}{}:
	default: // a token is pending already
	}
}

// Read reads one datagram into buf, blocking until there is one, the
// deadline passes (os.ErrDeadlineExceeded) or the ring is closed and empty
// (net.ErrClosed). A zero deadline waits for ever; a datagram already held
// is returned whatever the deadline. A datagram longer than buf is truncated.
func (r *Ring) Read(buf []byte, deadline time.Time) (n int, from netip.AddrPort, err error) {
	pos, err := r.claimOne(deadline)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	n, s := r.take(pos, buf)
	from = s.info.Src
	r.release(s, pos)
	r.passOn()
	return n, from, nil
}

// ReadPacket is Read that also returns what is known about the datagram.
func (r *Ring) ReadPacket(buf []byte, deadline time.Time) (int, PacketInfo, error) {
	pos, err := r.claimOne(deadline)
	if err != nil {
		return 0, PacketInfo{}, err
	}
	n, s := r.take(pos, buf)
	info := s.info
	info.Size = s.size
	r.release(s, pos)
	r.passOn()
	return n, info, nil
}

// claimOne claims the oldest datagram, waiting for one until the deadline.
func (r *Ring) claimOne(deadline time.Time) (uint64, error) {
	for {
		if pos, k := r.claim(1); k == 1 {
			if r.skipBad(pos) {
				continue
			}
			return pos, nil
		}
		if err := r.wait(deadline, nil); err != nil {
			return 0, err
		}
	}
}

// ReadBatch reads up to len(bufs) datagrams: datagram i into bufs[i], its
// length into sizes[i] and, when addrs is not nil, its source into addrs[i].
// It blocks like Read until at least one is there, then takes what is held
// without waiting for more. sizes (and addrs) must be as long as bufs.
func (r *Ring) ReadBatch(bufs [][]byte, sizes []int, addrs []netip.AddrPort, deadline time.Time) (int, error) {
	if len(sizes) < len(bufs) || (addrs != nil && len(addrs) < len(bufs)) {
		return 0, errors.New("fastfilter: ReadBatch: sizes or addrs shorter than bufs")
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	for {
		first, k := r.claim(len(bufs))
		if k == 0 {
			if err := r.wait(deadline, nil); err != nil {
				return 0, err
			}
			continue
		}
		got := 0
		for i := range k {
			pos := first + uint64(i)
			if r.skipBad(pos) {
				continue
			}
			n, s := r.take(pos, bufs[got])
			sizes[got] = n
			if addrs != nil {
				addrs[got] = s.info.Src
			}
			r.release(s, pos) // at once: receivers need not wait for the batch
			got++
		}
		if got == 0 {
			continue // only datagrams that failed their checksum
		}
		r.passOn()
		return got, nil
	}
}

// passOn wakes another waiting reader when datagrams are left: one token
// wakes one reader.
func (r *Ring) passOn() {
	if r.waiters.Load() > 0 && r.available() {
		r.signal()
	}
}

// timerPool keeps deadline timers so a blocking read allocates nothing.
var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// Wait blocks until a datagram may be there to read (nil), cancel is
// closed (os.ErrDeadlineExceeded) or the ring is closed and empty
// (net.ErrClosed); a nil cancel never fires. A read after it may still
// find nothing: another reader may have been first. It is for readers
// whose deadline can move while they wait, as a net.PacketConn's can
// (mediaport): they read with a deadline in the past and wait here on a
// channel their deadline's timer closes.
func (r *Ring) Wait(cancel <-chan struct{}) error { return r.wait(time.Time{}, cancel) }

// wait blocks until a datagram may be there. It returns an error when the
// deadline passed, cancel was closed or the ring is closed and empty.
//
// Receivers hand a slot over with a release store and then look for
// waiters, and a plain store may still sit in the store buffer when that
// load runs: both sides could miss each other. What cannot be missed is
// the receiver's compare-and-swap that took its turn and claimed the slot,
// which comes before its look for waiters: a reader that registered first
// is seen, and a reader that registered later finds the turn taken, or
// tail ahead of head: a datagram on its way. It yields until the slot is
// handed over instead of sleeping.
func (r *Ring) wait(deadline time.Time, cancel <-chan struct{}) error {
	r.waiters.Add(1)
	defer r.waiters.Add(-1)
	if r.available() { // a producer may have missed our waiter count
		return nil
	}
	if r.inFlight() {
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return os.ErrDeadlineExceeded
		}
		runtime.Gosched()
		return nil
	}
	if r.closed.Load() {
		return net.ErrClosed
	}
	var timeout <-chan time.Time // nil: no deadline
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := timerPool.Get().(*time.Timer)
		t.Reset(d)
		defer func() {
			t.Stop()
			timerPool.Put(t)
		}()
		timeout = t.C
	}
	select {
	case <-r.wake:
	case <-r.done:
	case <-timeout:
		if !r.available() {
			return os.ErrDeadlineExceeded
		}
	case <-cancel:
		if !r.available() {
			return os.ErrDeadlineExceeded
		}
	}
	return nil
}

// Close wakes blocked readers; reads return what is held, then
// net.ErrClosed. Datagrams arriving later are dropped and counted.
func (r *Ring) Close() error {
	r.once.Do(func() {
		r.closed.Store(true)
		close(r.done)
	})
	return nil
}

// Len returns how many datagrams the ring holds.
func (r *Ring) Len() int { return r.Stats().Len }

// Stats returns the ring's counters.
func (r *Ring) Stats() RingStats {
	// Each counter is loaded before the position it is subtracted from,
	// so neither difference goes negative (a slot is claimed before it is
	// counted as discarded or skipped); while one is being verified or
	// skipped, Enqueued and Read may count it for a moment.
	skipped := r.skipped.Load()
	h := r.head.Load()
	discarded := r.discarded.Load()
	t := r.tailPos()
	read := h - min(h, skipped)
	enqueued := t - min(t, discarded)
	return RingStats{
		Enqueued:           enqueued,
		Read:               read,
		DroppedFull:        r.droppedFull.Load(),
		DroppedClosed:      r.droppedClosed.Load(),
		DroppedBadChecksum: discarded,
		Len:                int(enqueued - min(enqueued, read)),
	}
}
