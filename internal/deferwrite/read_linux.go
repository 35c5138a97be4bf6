//go:build linux

package deferwrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/pollread"
)

// Reading through the ring. A link whose reads bring one frame per system
// call (a TAP) pays a system call per frame read and, while frames queue
// up, one per frame written, since a reader that does not wait writes its
// queue directly. Bound to its reader (BindReading), the Writer reads too:
// one multishot read keeps taking frames into a ring of provided buffers,
// and one io_uring_enter per batch submits the batch's replies, runs the
// reads that became possible (the ring defers the kernel's work to it,
// IORING_SETUP_DEFER_TASKRUN) and, when no frame is there, sleeps until
// one is.

// ErrNoRingRead is what BindReading returns on a kernel without multishot
// reads into provided buffers (before Linux 6.7), or without the ring
// setup they run in here; the reader then stays on poll(2) and reads.
var ErrNoRingRead = errors.New("deferwrite: this kernel cannot read through io_uring (multishot read, provided buffer ring, deferred task work)")

const (
	// readBufs is how many frames the ring may hold read, and not yet
	// taken, at most; fewer when frames are large (readBufBytes).
	readBufs     = 256
	readBufBytes = 4 << 20
)

// ringReader is the reading side of a bound Writer: the frames the
// kernel read, in order, waiting to be taken.
type ringReader struct {
	fd    int
	bufs  *bufRing
	armed bool // the multishot read is on
	// With recvmsg, msg gives the room for each message's name and
	// control data; nameLen and controlLen are that room.
	recvmsg             bool
	msg                 unix.Msghdr
	nameLen, controlLen int
	// The frames read and not taken: buffer ids and sizes, a FIFO.
	bid     [readBufs]uint16
	size    [readBufs]int32
	head, n int
	err     error // the read's error, returned once the frames before it are taken
	tooBig  int   // frames larger than a buffer, dropped
}

// BindReading makes w read fd as well, with buffers for reads of up to
// size bytes (the most one read brings; a larger one is dropped, counted
// in TakeTooBig). Call it from the goroutine that will make every
// ReadFrames call, locked to its OS thread (runtime.LockOSThread): the
// ring it makes is that thread's alone (IORING_SETUP_SINGLE_ISSUER), so
// the kernel keeps the reads' work for its io_uring_enter. It returns
// ErrNoRingRead, w unchanged, where the kernel cannot.
func (w *Writer) BindReading(fd, size int) error {
	return w.bind(&ringReader{fd: fd}, size)
}

// BindRecvMsg is BindReading for a socket whose messages come with a
// name and control data (an AF_PACKET socket's sockaddr_ll and
// PACKET_AUXDATA): a multishot recvmsg takes each message into a buffer
// holding the kernel's io_uring_recvmsg_out, nameLen bytes for the name,
// controlLen for the control data and up to size bytes of payload; take
// gets the whole of it, which ParseRecvMsg splits (Linux 6.0 and later,
// which the ring's setup implies).
func (w *Writer) BindRecvMsg(fd, size, nameLen, controlLen int) error {
	rd := &ringReader{fd: fd, recvmsg: true, nameLen: nameLen, controlLen: controlLen}
	rd.msg.Namelen = uint32(nameLen)
	rd.msg.SetControllen(controlLen)
	return w.bind(rd, uringRecvMsgOutSize+nameLen+controlLen+size)
}

// RecvMsg is one message a multishot recvmsg brought (BindRecvMsg).
type RecvMsg struct {
	// Name and Control are the message's name and control data, cut to
	// the room they had.
	Name, Control []byte
	// Payload is what was received of the payload; PayloadLen the
	// payload's whole length, more when it was cut (Flags has
	// MSG_TRUNC).
	Payload    []byte
	PayloadLen int
	Flags      uint32
}

// ParseRecvMsg splits a buffer a multishot recvmsg filled (what take got)
// into its parts; false when it is too short to hold them.
func (w *Writer) ParseRecvMsg(data []byte) (RecvMsg, bool) {
	rd := w.rd
	head := uringRecvMsgOutSize + rd.nameLen + rd.controlLen
	if len(data) < head {
		return RecvMsg{}, false
	}
	ne := binary.NativeEndian
	nameLen := min(int(ne.Uint32(data[0:])), rd.nameLen)
	controlLen := min(int(ne.Uint32(data[4:])), rd.controlLen)
	name := data[uringRecvMsgOutSize:]
	control := name[rd.nameLen:]
	return RecvMsg{
		Name:       name[:nameLen],
		Control:    control[:controlLen],
		Payload:    data[head:],
		PayloadLen: int(ne.Uint32(data[8:])),
		Flags:      ne.Uint32(data[12:]),
	}, true
}

// bind makes the ring that reads for rd, with reads of up to size bytes.
func (w *Writer) bind(rd *ringReader, size int) error {
	if size <= 0 || size > 1<<16 {
		return fmt.Errorf("deferwrite: read buffer size %d out of range", size)
	}
	count := readBufs
	for count > 8 && count*size > readBufBytes {
		count /= 2
	}
	// Completions: every buffer's frame, every slot's write, the wake.
	cq := uint32(1) << bits.Len(uint(count+Slots+1))
	r, err := newURingFlags(2*Slots, cq, uringSetupSingleIssuer|uringSetupDeferTaskrun)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoRingRead, err)
	}
	if !r.supports(uringOpReadMultishot) {
		r.close()
		return ErrNoRingRead
	}
	// A byte more than the largest read, so that one cut to fit shows.
	b, err := r.registerBufRing(0, count, size+1)
	if err != nil {
		r.close()
		return fmt.Errorf("%w: %w", ErrNoRingRead, err)
	}
	w.handover.Lock()
	defer w.handover.Unlock()
	if w.closeSeen {
		b.close()
		r.close()
		return errors.New("deferwrite: closed")
	}
	// The old ring's polls, if any were armed, go with it (and its
	// buffers, bound again).
	old, oldRd := w.r, w.rd
	rd.bufs = b
	w.r, w.rd = r, rd
	old.close()
	if oldRd != nil {
		oldRd.bufs.close()
	}
	return nil
}

// LeaveReading is the bound reader's last step, on its thread, once it
// will read no more (it was woken to close, or its descriptor failed): it
// cancels the read (StopReading), so that the ring holds the descriptor no
// more, and releases the ring if Close came first.
func (w *Writer) LeaveReading() {
	_ = w.StopReading()
	w.handover.Lock()
	defer w.handover.Unlock()
	w.left = true
	if w.closeSeen {
		w.release()
	}
}

// Reading reports whether BindReading bound w.
func (w *Writer) Reading() bool { return w.rd != nil }

// ReadFrames is the bound reader's read (BindReading): it hands take the
// frames the ring has read, up to max, in order, each to be copied out
// before take returns (its buffer goes back to the kernel then); take
// reports whether it kept the frame. With none read it submits the writes
// queued (their wait included, as the Poller's wait does) and sleeps in the
// same io_uring_enter until a frame is read or p is woken (then it
// returns pollread.ErrWoken); with some, it still submits the writes
// queued before it returns. A deadline set on p does not apply: Close
// wakes it.
func (w *Writer) ReadFrames(p *pollread.Poller, max int, take func(data []byte) bool) (n int, err error) {
	rd := w.rd
	for {
		n += rd.take(max-n, take)
		if n > 0 && w.n == 0 {
			return n, nil
		}
		if n == 0 && rd.err != nil {
			err, rd.err = rd.err, nil
			return 0, err
		}
		if p.Woken() {
			return n, pollread.ErrWoken
		}
		if n == 0 {
			p.Yield()
		}
		// The slots are the reader's: StopDeferring ended the dispatch.
		r := w.r
		writes := w.submitQueued(rd.fd)
		if !rd.armed && rd.arm(r) {
			rd.armed = true
		}
		if !r.wakeArmed && r.pollIn(p.EventFD(), uringWakeData) {
			r.wakeArmed = true
		}
		if err := w.reap(writes, n == 0); err != nil {
			return n, fmt.Errorf("io_uring_enter: %w", err)
		}
	}
}

// arm queues the multishot read or recvmsg.
func (rd *ringReader) arm(r *uring) bool {
	if rd.recvmsg {
		return r.recvMsgMultishot(rd.fd, 0, &rd.msg, uringReadData)
	}
	return r.readMultishot(rd.fd, 0, uringReadData)
}

// StopReading, on the bound thread, cancels the multishot read and waits
// for its last completion, so that the ring holds the descriptor no more
// (a TAP goes when its last reference does). Frames read meanwhile are
// dropped; a later ReadFrames arms the read again.
func (w *Writer) StopReading() error {
	rd, r := w.rd, w.r
	if rd == nil || !rd.armed {
		return nil
	}
	r.cancel(uringReadData, uringCancelData)
	for rd.armed {
		if err := r.enter(1); err != nil {
			return fmt.Errorf("io_uring_enter: %w", err)
		}
		for {
			data, res, flags, ok := r.nextFlags()
			if !ok {
				break
			}
			w.completed(data, res, flags)
		}
	}
	rd.take(len(rd.bid), func([]byte) bool { return false })
	rd.err = nil
	return nil
}

// completed takes the read's completion: a frame in a buffer, or the end
// of the multishot read (it is armed again with the next wait). It
// reports whether there is something for ReadFrames to return.
func (rd *ringReader) completed(res int32, flags uint32) bool {
	if flags&uringCQEFMore == 0 {
		rd.armed = false
	}
	if flags&uringCQEFBuffer != 0 {
		bid := uint16(flags >> uringCQEBufferShift)
		if res < 0 || rd.n == len(rd.bid) {
			rd.bufs.put(bid) // cannot happen: a frame per buffer
			rd.bufs.publish()
			return false
		}
		i := (rd.head + rd.n) % len(rd.bid)
		rd.bid[i], rd.size[i] = bid, res
		rd.n++
		return true
	}
	switch {
	case res == 0:
		// The end of the file: nothing more will come (a TAP has none).
		rd.err = io.EOF
		return true
	case res > 0, res == -int32(unix.ENOBUFS), res == -int32(unix.EINTR), res == -int32(unix.EAGAIN), res == -int32(unix.ECANCELED):
		// Out of buffers (all read, none taken yet), or ended without a
		// frame: a final completion ends the wait, so that ReadFrames
		// arms the read again.
		return !rd.armed
	}
	rd.err = unix.Errno(-res)
	return true
}

// take hands up to max frames to take and gives their buffers back.
func (rd *ringReader) take(max int, take func(data []byte) bool) int {
	n, put := 0, false
	for ; rd.n > 0 && n < max; rd.n-- {
		i := rd.head
		rd.head = (rd.head + 1) % len(rd.bid)
		bid, size := rd.bid[i], int(rd.size[i])
		if size >= rd.bufs.size {
			// A read fills at most the buffer, a byte more than the
			// largest frame: a full one held a frame cut to fit.
			rd.tooBig++
		} else if take(rd.bufs.buf(bid, size)) {
			n++
		}
		rd.bufs.put(bid)
		put = true
	}
	if put {
		rd.bufs.publish()
	}
	return n
}

// TakeTooBig returns how many frames were dropped for being larger than
// the read buffers since it was last called.
func (w *Writer) TakeTooBig() int {
	if w.rd == nil {
		return 0
	}
	n := w.rd.tooBig
	w.rd.tooBig = 0
	return n
}
