// Package deferwrite defers the frames a link writes while its reader
// dispatches a batch (a relay's replies, written from the hook) to the
// reader's next wait for a frame: one io_uring_enter submits their writes
// and a poll on the link's descriptor and the reader's wake eventfd, then
// sleeps. A write to a TAP or a veth runs the kernel's receive for the
// destination and wakes its reader; written that way, the wake-up meets the
// relay asleep instead of preempting it on its way back from the write, one
// context switch less per relayed frame (docs/design.md, "Waking the
// reader"). link/tap and link/raw use it.
//
// To plug it in, on a descriptor read through internal/pollread: Open a
// Writer with the link's write lock, its Poller and a direct write (the
// link's own, run with the lock held); Open sets the Poller's Waiter. The
// reader calls StopDeferring before each read and StartDeferring after it;
// the link's write, under its lock, offers the frames to Queue first and
// writes them itself when Queue says no; a write that does not go through
// Queue (a virtio-net train) calls Drain first, so frames stay in order.
// Without io_uring (an old kernel, a seccomp filter,
// kernel.io_uring_disabled) Open returns nil and every write stays direct.
//
// Frames are copied into Slots slots of SlotSize bytes; a frame that does
// not fit, or a batch that does not fit the free slots, makes Queue write
// what is queued and say no. The reader writes the queued frames directly
// instead when it will not wait through the ring: its last batch did not
// empty the queue, a deadline is set, or it was woken to close. A deferred
// write that fails cannot be reported to its writer (it was told it
// succeeded): it is counted in Options.Errors.
//
// A reader whose reads bring one frame per system call (a TAP) can read
// through the ring too: BindReading, from the reading goroutine locked to
// its OS thread, makes the ring that thread's (IORING_SETUP_SINGLE_ISSUER,
// IORING_SETUP_DEFER_TASKRUN), registers a ring of provided buffers and
// arms one multishot read on the descriptor; Writer.ReadFrames then hands
// over the frames read, and with each io_uring_enter submits the queued
// writes, runs the reads the kernel kept for it and, when nothing was
// read, sleeps until a frame or the wake. StopReading cancels the read so
// that the ring no longer holds the descriptor. Where the kernel cannot
// (before Linux 6.7), BindReading returns ErrNoRingRead and the reader
// stays on poll(2).
package deferwrite
