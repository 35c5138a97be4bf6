//go:build linux

package deferwrite

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/pollread"
)

// Slots is how many frames written during one dispatch wait for the
// reader's next io_uring_enter; SlotSize is the largest frame deferred.
const (
	Slots    = 64
	SlotSize = 2048
)

// Options says what a Writer defers for.
type Options struct {
	// Poller is the link reader's; Open sets its Waiter.
	Poller *pollread.Poller
	// Lock is the link's write lock, held by Queue, Drain and the direct
	// write.
	Lock *sync.Mutex
	// Closed is the link's: a closed link defers nothing.
	Closed *atomic.Bool
	// Header goes before every frame in the ring's writes (a TAP's
	// virtio-net header); it must stay valid and unchanged.
	Header []byte
	// Write writes frames directly, in order, with Lock held, and returns
	// how many went (the link's own write, bound once: it must not
	// allocate). It adds Header itself.
	Write func(frames [][]byte) (int, error)
	// Deferred counts frames submitted with a wait; Errors the deferred
	// frames whose write failed.
	Deferred, Errors *atomic.Uint64
}

// Writer holds the frames written during a dispatch. The slots belong to
// writers (under Options.Lock) while deferring is set, between a
// StartDeferring and the next StopDeferring, and to the reader otherwise.
type Writer struct {
	o  Options
	r  *uring
	rd *ringReader // set by BindReading
	// A bound ring is its reader thread's: Close leaves it to the reader
	// when the reader has not left (LeaveReading); whichever comes second
	// releases it (handover guards these).
	handover             sync.Mutex
	closeSeen, left, off bool
	deferring            bool
	n                    int
	slots                [Slots][SlotSize]byte
	frames               [Slots][]byte // the queued frames, in slots
	iov                  [Slots][2]unix.Iovec
}

// Open returns a Writer deferring for o and sets o.Poller's Waiter; nil
// when io_uring is unavailable.
func Open(o Options) *Writer {
	r, err := newURing(2 * Slots)
	if err != nil {
		return nil
	}
	w := &Writer{o: o, r: r}
	o.Poller.SetWaiter(w.wait)
	return w
}

// Close releases the ring; call it once the reader has returned, or, with
// a reader bound (BindReading), once it was woken: if it has not left yet
// (LeaveReading), it releases the ring as it does.
func (w *Writer) Close() {
	w.handover.Lock()
	defer w.handover.Unlock()
	w.closeSeen = true
	if w.rd == nil || w.left {
		w.release()
	}
}

// release closes the ring and unmaps its buffers, once (handover held).
func (w *Writer) release() {
	if w.off {
		return
	}
	w.off = true
	w.r.close()
	if w.rd != nil {
		w.rd.bufs.close()
	}
}

// StartDeferring begins a dispatch: the reader calls it as a read returns.
func (w *Writer) StartDeferring() {
	w.o.Lock.Lock()
	w.deferring = !w.o.Closed.Load()
	w.o.Lock.Unlock()
}

// StopDeferring ends a dispatch: the reader calls it before it reads. What
// was queued is the reader's to write with its wait; if it will not wait
// through the ring, it is written now, directly.
func (w *Writer) StopDeferring() {
	w.o.Lock.Lock()
	defer w.o.Lock.Unlock()
	w.deferring = false
	if w.n > 0 && w.rd == nil && !(w.o.Poller.WillPoll() && w.o.Poller.Waits()) {
		w.writeQueued()
	}
}

// Queue copies frames into free slots while deferring (Lock held) and
// reports whether it did. When they do not all fit, it writes what is
// queued, so that the caller's direct write keeps the order.
func (w *Writer) Queue(frames [][]byte) bool {
	if !w.deferring {
		return false
	}
	fits := w.n+len(frames) <= Slots
	for _, f := range frames {
		fits = fits && len(f) <= SlotSize
	}
	if !fits {
		w.writeQueued()
		return false
	}
	for _, f := range frames {
		w.frames[w.n] = w.slots[w.n][:copy(w.slots[w.n][:], f)]
		w.n++
	}
	return true
}

// Drain writes what is queued, directly, before a write that does not go
// through Queue (Lock held).
func (w *Writer) Drain() {
	if w.deferring {
		w.writeQueued()
	}
}

// writeQueued writes the queued frames directly, in order, counting each
// one that fails.
func (w *Writer) writeQueued() {
	for i := 0; i < w.n; {
		n, err := w.o.Write(w.frames[i:w.n])
		i += n
		if err != nil {
			w.o.Errors.Add(1)
			i++
		}
	}
	w.n = 0
}

// wait is the Poller's Waiter: with frames queued, it submits their
// writes and polls for fd and the poller's eventfd in one io_uring_enter
// that returns once one of the two is readable. Without, it leaves the
// wait to poll(2).
func (w *Writer) wait(fd, efd int) bool {
	r := w.r
	if w.n == 0 {
		return false
	}
	writes := w.submitQueued(fd)
	if !r.pollArmed && r.pollIn(fd, uringPollData) {
		r.pollArmed = true
	}
	if !r.wakeArmed && r.pollIn(efd, uringWakeData) {
		r.wakeArmed = true
	}
	return w.reap(writes, true) == nil
}

// submitQueued puts the queued frames' writes to fd on the submission
// queue (the reader's, with the slots its own) and returns how many it
// added.
func (w *Writer) submitQueued(fd int) (writes uint32) {
	r, n := w.r, w.n
	w.n = 0
	for i := 0; i < n; i++ {
		iov := w.iov[i][:0]
		if len(w.o.Header) > 0 {
			iov = append(iov, unix.Iovec{Base: &w.o.Header[0]})
			iov[0].SetLen(len(w.o.Header))
		}
		iov = append(iov, unix.Iovec{Base: &w.slots[i][0]})
		iov[len(iov)-1].SetLen(len(w.frames[i]))
		if r.writev(fd, iov, uint64(i)) {
			writes++
		} else {
			w.o.Errors.Add(1)
		}
	}
	w.o.Deferred.Add(uint64(writes))
	return writes
}

// completed takes one completion: a write's (its failure counted), a
// poll's, the wake's, the read's or the cancel's. It reports whether the
// wait may end for it (the descriptor readable, a frame read, the wake).
func (w *Writer) completed(data uint64, res int32, flags uint32) bool {
	r := w.r
	switch data {
	case uringPollData:
		r.pollArmed = false
		return true
	case uringWakeData:
		r.wakeArmed = false
		return true
	case uringReadData:
		return w.rd.completed(res, flags)
	case uringCancelData:
		return false
	}
	if res < 0 {
		w.o.Errors.Add(1)
	}
	return false
}

// reap submits what is queued and takes completions until every one of
// writes is done (the slots are reused once it returns) and, with
// needReady, until the descriptor is readable, a frame was read or the
// eventfd was written.
func (w *Writer) reap(writes uint32, needReady bool) error {
	r := w.r
	ready := !needReady
	wait := writes
	if !ready {
		wait++
	}
	for first := true; first || wait > 0; first = false {
		if err := r.enter(wait); err != nil {
			w.o.Errors.Add(uint64(writes))
			return err
		}
		for {
			data, res, flags, ok := r.nextFlags()
			if !ok {
				break
			}
			if w.completed(data, res, flags) {
				ready = true
			} else if data < Slots {
				writes--
			}
		}
		wait = writes
		if !ready {
			wait++
		}
	}
	return nil
}
