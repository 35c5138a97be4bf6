//go:build linux

package tap

import (
	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/iovec"
)

// urSlots is how many frames written during one dispatch wait for the
// reader's next io_uring_enter.
const urSlots = 64

// urWriter defers the frames written while the reader dispatches a batch
// (its relays' replies, mostly) to the reader's next wait for a frame: one
// io_uring_enter submits their writes and a poll on the TAP and sleeps. A
// TAP write runs the kernel's receive for the destination and wakes its
// reader; written that way, the wake-up meets the relay asleep instead of
// preempting it on its way back from the write, one context switch less
// per relayed frame (docs/design.md, "Waking the reader").
//
// The slots belong to writers (under tapDevice.wmu) while deferring is
// set, between a ReadFrames' return and the next ReadFrames, and to the
// reader otherwise.
type urWriter struct {
	r         *uring // nil: io_uring unavailable; every write is direct
	fd        int
	deferring bool
	n         int
	slots     [urSlots][2048]byte
	lens      [urSlots]int
	iov       [urSlots]unix.Iovec
}

// urOpen sets up the io_uring write path; without io_uring (an old kernel,
// a seccomp filter, kernel.io_uring_disabled) writes stay direct.
func (d *tapDevice) urOpen() {
	r, err := newURing(2 * urSlots)
	if err != nil {
		return
	}
	d.rc.Control(func(fd uintptr) { d.ur.fd = int(fd) })
	d.ur.r = r
	d.poll.SetWaiter(d.urWait)
}

// urClose releases the ring; the reader has returned.
func (d *tapDevice) urClose() {
	if d.ur.r != nil {
		d.ur.r.close()
	}
}

// urQueue copies frames into free slots (d.wmu held, deferring); false
// when they do not all fit.
func (d *tapDevice) urQueue(frames [][]byte) bool {
	u := &d.ur
	if u.n+len(frames) > urSlots {
		return false
	}
	hdr := 0
	if d.vnet.on {
		hdr = len(zeroVnetHdr)
	}
	for _, f := range frames {
		if hdr+len(f) > len(u.slots[0]) {
			return false
		}
	}
	for _, f := range frames {
		s := &u.slots[u.n]
		copy(s[:], zeroVnetHdr[:hdr])
		u.lens[u.n] = hdr + copy(s[hdr:], f)
		u.n++
	}
	return true
}

// urStopDeferring ends a dispatch: what was queued is the reader's to
// write. Writes that do not go into the next wait are written now,
// directly.
func (d *tapDevice) urStopDeferring() {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.ur.deferring = false
	if d.ur.n > 0 && !(d.poll.WillPoll() && d.poll.Waits()) {
		d.urWriteQueued()
	}
}

// urStartDeferring begins a dispatch.
func (d *tapDevice) urStartDeferring() {
	d.wmu.Lock()
	d.ur.deferring = !d.closed.Load()
	d.wmu.Unlock()
}

// urWriteQueued writes the queued frames directly, in order (d.wmu held):
// before a write that does not fit the slots, or when the reader will not
// wait through the ring.
func (d *tapDevice) urWriteQueued() {
	u := &d.ur
	for i := 0; i < u.n; i++ {
		d.wiov = iovec.Append(d.wiov[:0], u.slots[i][:u.lens[i]])
		d.wframes = nil
		if _, err := d.runWrite(d.writeQueuedFn); err != nil {
			d.stats.TxDeferredErrors.Add(1)
		}
	}
	u.n = 0
}

func (d *tapDevice) writeQueued(fd uintptr) bool {
	d.writeOne(fd)
	return true
}

// urWait is the Poller's Waiter: with frames queued, it submits their
// writes and polls for the TAP and the poller's eventfd in one
// io_uring_enter that returns once one of the two is readable. Without, it
// leaves the wait to poll(2).
func (d *tapDevice) urWait(fd, efd int) bool {
	u, r := &d.ur, d.ur.r
	n := u.n
	if n == 0 {
		return false
	}
	u.n = 0
	var submit uint32
	for i := 0; i < n; i++ {
		u.iov[i] = unix.Iovec{Base: &u.slots[i][0]}
		u.iov[i].SetLen(u.lens[i])
		if r.writev(fd, u.iov[i:i+1], uint64(i)) {
			submit++
		} else {
			d.stats.TxDeferredErrors.Add(1)
		}
	}
	writes := submit
	d.stats.TxDeferred.Add(uint64(writes))
	if !r.pollArmed && r.pollIn(fd, uringPollData) {
		r.pollArmed = true
		submit++
	}
	if !r.wakeArmed && r.pollIn(efd, uringWakeData) {
		r.wakeArmed = true
		submit++
	}
	// Wait for every write (the slots are reused once this returns) and
	// for the TAP or the eventfd to be readable.
	ready := false
	for wait := writes + 1; wait > 0; {
		if err := r.enter(submit, wait); err != nil {
			d.stats.TxDeferredErrors.Add(uint64(writes))
			return false
		}
		submit = 0
		for {
			data, res, ok := r.next()
			if !ok {
				break
			}
			switch data {
			case uringPollData:
				r.pollArmed, ready = false, true
			case uringWakeData:
				r.wakeArmed, ready = false, true
			default:
				writes--
				if res < 0 {
					d.stats.TxDeferredErrors.Add(1)
				}
			}
		}
		wait = writes
		if !ready {
			wait++
		}
	}
	return true
}
