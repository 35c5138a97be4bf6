//go:build linux

package deferwrite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/pollread"
)

// hangGuard turns a frame that never comes into a failure; it measures
// nothing.
const hangGuard = 30 * time.Second

// ringLink is a Writer bound to read one end of a SOCK_SEQPACKET pair, a
// link whose reads bring one record each, as a TAP's do; the test reads
// and writes the other end (peer). The test's goroutine is the reader,
// locked to its thread.
type ringLink struct {
	w              *Writer
	poller         *pollread.Poller
	fd, peer       int
	mu             sync.Mutex
	closed         atomic.Bool
	deferred, errs atomic.Uint64
	bufs           [][]byte
	n              int
	takeFn         func([]byte) bool
}

func newRingLink(t *testing.T, size int) *ringLink {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := &ringLink{fd: fds[0], peer: fds[1]}
	t.Cleanup(func() { unix.Close(l.peer) })
	if l.poller, err = pollread.New(); err != nil {
		t.Fatal(err)
	}
	l.w = Open(Options{Poller: l.poller, Lock: &l.mu, Closed: &l.closed, Write: l.writeDirect, Deferred: &l.deferred, Errors: &l.errs})
	if l.w == nil {
		unix.Close(l.fd)
		requireRing(t, "io_uring is unavailable")
	}
	if err := l.w.BindReading(l.fd, size); err != nil {
		l.w.Close()
		unix.Close(l.fd)
		requireRing(t, err.Error())
	}
	t.Cleanup(func() {
		l.w.LeaveReading()
		l.w.Close()
		unix.Close(l.fd)
		l.poller.Close()
	})
	l.bufs = make([][]byte, 32)
	for i := range l.bufs {
		l.bufs[i] = make([]byte, size)
	}
	l.takeFn = l.take
	return l
}

// requireRing skips where the kernel cannot read through io_uring, but
// fails under CI=true: CI's kernel can, and the path must be tested there.
func requireRing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("reading through io_uring: %s (CI=true: must run)", why)
	}
	t.Skipf("reading through io_uring: %s", why)
}

func (l *ringLink) writeDirect(frames [][]byte) (int, error) {
	for i, f := range frames {
		if _, err := unix.Write(l.fd, f); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}

func (l *ringLink) take(data []byte) bool {
	l.bufs[l.n] = l.bufs[l.n][:copy(l.bufs[l.n][:cap(l.bufs[l.n])], data)]
	l.n++
	return true
}

// read is the link's ReadFrames: the Writer's, between the dispatches.
func (l *ringLink) read() (int, error) {
	l.w.StopDeferring()
	l.n = 0
	n, err := l.w.ReadFrames(l.poller, len(l.bufs), l.takeFn)
	if err == nil {
		l.w.StartDeferring()
	}
	return n, err
}

func record(seq, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(seq))
	for i := 4; i < size; i++ {
		b[i] = byte(seq + i)
	}
	return b
}

// send writes records to the peer's end, waiting while its send buffer
// is full; any goroutine may call it.
func (l *ringLink) send(recs ...[]byte) error {
	for _, r := range recs {
		for {
			_, err := unix.Write(l.peer, r)
			if err == nil {
				break
			}
			if err != unix.EAGAIN {
				return fmt.Errorf("peer write: %w", err)
			}
			if err := waitFD(l.peer, unix.POLLOUT); err != nil {
				return err
			}
		}
	}
	return nil
}

// receive reads n records at the peer's end; any goroutine may call it.
func (l *ringLink) receive(n int) ([][]byte, error) {
	var got [][]byte
	buf := make([]byte, 4096)
	for len(got) < n {
		m, err := unix.Read(l.peer, buf)
		if err == unix.EAGAIN {
			if err := waitFD(l.peer, unix.POLLIN); err != nil {
				return got, err
			}
			continue
		}
		if err != nil {
			return got, fmt.Errorf("peer read: %w", err)
		}
		got = append(got, append([]byte(nil), buf[:m]...))
	}
	return got, nil
}

func waitFD(fd int, events int16) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	n, err := unix.Poll(fds, int(hangGuard/time.Millisecond))
	if err != nil && err != unix.EINTR {
		return fmt.Errorf("poll: %w", err)
	}
	if n == 0 && err == nil {
		return fmt.Errorf("descriptor %d not ready (%#x) within %v", fd, events, hangGuard)
	}
	return nil
}

// TestRingReadsInOrder: records queued before the ring reads, more than
// it has buffers where the peer's send buffer takes them (its multishot
// read then runs out of buffers and is armed again), and while it reads,
// come out whole and in order.
func TestRingReadsInOrder(t *testing.T) {
	l := newRingLink(t, 512)
	// Room for more than readBufs records queued: root may force it.
	roomy := unix.SetsockoptInt(l.peer, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) == nil
	const total = 3 * readBufs
	var want, got [][]byte
	for i := 0; i < total; i++ {
		want = append(want, record(i, 20+i%300))
	}
	first, rest := want[:readBufs+40], want[readBufs+40:]
	if roomy {
		if err := l.send(first...); err != nil {
			t.Fatal(err)
		}
		first = nil
	}
	sent := make(chan error, 1)
	go func() { sent <- l.send(append(first, rest...)...) }()
	for len(got) < total {
		n, err := l.read()
		if err != nil {
			t.Fatalf("ReadFrames after %d records: %v", len(got), err)
		}
		for i := 0; i < n; i++ {
			got = append(got, append([]byte(nil), l.bufs[i]...))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records read (-want +got):\n%s", diff)
	}
}

// TestRingRepliesGoWithTheWait: what the dispatch queues goes out with the
// reader's next io_uring_enter, in order, counted as deferred, and the
// same call then waits for the next record.
func TestRingRepliesGoWithTheWait(t *testing.T) {
	l := newRingLink(t, 512)
	if err := l.send(record(1, 100)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.read(); n != 1 || err != nil {
		t.Fatalf("ReadFrames = %d, %v; want the record sent", n, err)
	}
	replies := [][]byte{record(100, 60), record(101, 61), record(102, 62)}
	l.mu.Lock()
	queued := l.w.Queue(replies[:2]) && l.w.Queue(replies[2:])
	l.mu.Unlock()
	if !queued {
		t.Fatal("Queue during a dispatch said no")
	}
	peerGot := make(chan [][]byte, 1)
	go func() {
		got, err := l.receive(len(replies))
		if err == nil {
			err = l.send(record(2, 100))
		}
		if err != nil {
			t.Error(err)
			l.poller.Wake()
		}
		peerGot <- got
	}()
	n, err := l.read()
	got := <-peerGot
	if n != 1 || err != nil || binary.BigEndian.Uint32(l.bufs[0]) != 2 {
		t.Fatalf("ReadFrames = %d, %v; want record 2, sent once the replies came", n, err)
	}
	if diff := cmp.Diff(replies, got); diff != "" {
		t.Errorf("replies at the peer (-want +got):\n%s", diff)
	}
	if d, e := l.deferred.Load(), l.errs.Load(); d != 3 || e != 0 {
		t.Errorf("deferred %d, errors %d; want 3, 0", d, e)
	}
}

// TestRingWokenThenStopped: Wake ends a ReadFrames with nothing read, and
// StopReading leaves the ring holding the descriptor no more: closed, its
// socket is gone (the peer's write is refused), as a TAP would be.
func TestRingWokenThenStopped(t *testing.T) {
	l := newRingLink(t, 512)
	if err := l.send(record(1, 100)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.read(); n != 1 || err != nil {
		t.Fatalf("ReadFrames = %d, %v; want the record sent", n, err)
	}
	l.poller.Wake()
	if n, err := l.read(); n != 0 || !errors.Is(err, pollread.ErrWoken) {
		t.Fatalf("ReadFrames after Wake = %d, %v; want 0, ErrWoken", n, err)
	}
	if err := l.w.StopReading(); err != nil {
		t.Fatal(err)
	}
	if l.w.rd.armed {
		t.Fatal("the multishot read is still armed after StopReading")
	}
	unix.Close(l.fd)
	l.fd = -1
	if _, err := unix.Write(l.peer, record(2, 10)); !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("peer write after the reader's end closed: %v; want it refused (no reference left)", err)
	}
}

// TestRingReadAllocatesNothing: a relay's round through the ring (a record
// read, a reply queued and submitted with the next wait) allocates nothing.
func TestRingReadAllocatesNothing(t *testing.T) {
	l := newRingLink(t, 512)
	in, reply := record(1, 172), [][]byte{record(2, 172)}
	buf := make([]byte, 512)
	round := func() {
		if _, err := unix.Write(l.peer, in); err != nil {
			t.Fatal(err)
		}
		if n, err := l.read(); n != 1 || err != nil {
			t.Fatalf("ReadFrames = %d, %v", n, err)
		}
		l.mu.Lock()
		l.w.Queue(reply)
		l.mu.Unlock()
		// The reply goes with the next read's wait: the peer reads the
		// one before it.
		for {
			if _, err := unix.Read(l.peer, buf); err != unix.EAGAIN {
				break
			}
			if _, err := unix.Write(l.peer, in); err != nil {
				t.Fatal(err)
			}
			if _, err := l.read(); err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			l.w.Queue(reply)
			l.mu.Unlock()
		}
	}
	round()
	if allocs := testing.AllocsPerRun(200, round); allocs != 0 {
		t.Errorf("a round through the ring allocated %v times, want 0", allocs)
	}
}

// TestRingDropsWhatDoesNotFit: a record longer than the reads' size is
// dropped and counted, not handed over cut; one of exactly that size
// passes whole.
func TestRingDropsWhatDoesNotFit(t *testing.T) {
	l := newRingLink(t, 100)
	fits := record(2, 100)
	if err := l.send(record(1, 101), record(3, 400), fits); err != nil {
		t.Fatal(err)
	}
	n, err := l.read()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || !bytes.Equal(l.bufs[0], fits) {
		t.Errorf("ReadFrames = %d frames, first %x; want only the 100-byte record", n, l.bufs[0][:4])
	}
	if tooBig := l.w.TakeTooBig(); tooBig != 2 {
		t.Errorf("TakeTooBig = %d, want 2", tooBig)
	}
}

// TestRingRecvMsg: bound with recvmsg, each record comes with its control
// data (here SCM_CREDENTIALS, which SO_PASSCRED adds to every message), in
// order, the payload whole.
func TestRingRecvMsg(t *testing.T) {
	l := newRingLink(t, 512)
	if err := unix.SetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	controlLen := unix.CmsgSpace(unix.SizeofUcred)
	// Bind again, with recvmsg: the ring made by newRingLink goes.
	l.w.LeaveReading()
	l.w.left = false
	if err := l.w.BindRecvMsg(l.fd, 512, 16, controlLen); err != nil {
		t.Fatal(err)
	}
	var msgs []RecvMsg
	l.takeFn = func(data []byte) bool {
		m, ok := l.w.ParseRecvMsg(data)
		if !ok {
			t.Errorf("ParseRecvMsg(%d bytes): too short", len(data))
			return false
		}
		m.Name, m.Control, m.Payload = bytes.Clone(m.Name), bytes.Clone(m.Control), bytes.Clone(m.Payload)
		msgs = append(msgs, m)
		return true
	}
	want := [][]byte{record(1, 100), record(2, 200), record(3, 300)}
	if err := l.send(want...); err != nil {
		t.Fatal(err)
	}
	for len(msgs) < len(want) {
		if _, err := l.read(); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Payload, want[i]) || m.PayloadLen != len(want[i]) || m.Flags != 0 {
			t.Errorf("message %d: payload %d bytes (of %d), flags %#x; want record %d whole", i, len(m.Payload), m.PayloadLen, m.Flags, i+1)
		}
		cmsgs, err := unix.ParseSocketControlMessage(m.Control)
		if err != nil || len(cmsgs) != 1 {
			t.Fatalf("message %d: control data %x: %v", i, m.Control, err)
		}
		cred, err := unix.ParseUnixCredentials(&cmsgs[0])
		if err != nil || cred.Pid != int32(os.Getpid()) {
			t.Errorf("message %d: credentials %+v, %v; want this process's", i, cred, err)
		}
	}
}
