package deferwritetest

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/internal/pollread"
)

// Guard bounds the waits of the scenarios.
const Guard = netnstest.StateTimeout

// Link is the device under test: what ethlink reads and writes.
type Link interface {
	ReadFrames(bufs [][]byte, sizes []int) (int, error)
	WriteFrames(frames [][]byte) (int, error)
	Close() error
}

// Case is a link with deferred writes and the kernel's side of it.
type Case struct {
	Link Link
	// Poller is the link reader's.
	Poller *pollread.Poller
	// Inject has the kernel hand the link's reader a frame.
	Inject func(frame []byte) error
	// Seen is an AF_PACKET socket on the kernel's side that receives
	// (ETH_P_ALL) the frames the link writes.
	Seen int
	// Deferred is the link's count of deferred frames, Errors of those
	// whose write failed.
	Deferred, Errors *atomic.Uint64
	// Bufs are the reader's buffers: more than one, so that a read that
	// fills them does not find the queue empty.
	Bufs [][]byte
}

// Frame is a broadcast frame of the IEEE local experimental EtherType,
// which the kernel hands to no protocol, carrying mark.
func Frame(mark byte) []byte {
	f := make([]byte, 60)
	copy(f, "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
	f[20] = mark
	return f
}

// prepare makes Seen see only what reaches the kernel from the link,
// within Guard.
func (c *Case) prepare(t *testing.T) {
	t.Helper()
	if err := unix.SetsockoptInt(c.Seen, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(c.Seen, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: int64(Guard / time.Second)}); err != nil {
		t.Fatal(err)
	}
}

// RepliesGoWithTheWait: a frame written while the reader dispatches
// (between two ReadFrames, as a relay's reply) is written by the next
// ReadFrames together with its wait for a frame, in one io_uring_enter:
// the kernel has it while the reader sleeps, the next frame wakes the
// reader, and Close wakes a reader asleep there.
func RepliesGoWithTheWait(t *testing.T, c Case) {
	c.prepare(t)
	sizes := make([]int, len(c.Bufs))
	c.firstRead(t, sizes)
	if _, err := c.Link.WriteFrames([][]byte{Frame(2)}); err != nil {
		t.Fatal(err)
	}
	done := c.readOne(sizes)
	// The reply reaches the kernel while the reader waits.
	got := make([]byte, 2048)
	for {
		n, err := unix.Read(c.Seen, got)
		if err != nil {
			c.Link.Close()
			t.Fatalf("waiting for the frame written during the dispatch: %v", err)
		}
		if n >= 21 && bytes.Equal(got[:14], Frame(2)[:14]) && got[20] == 2 {
			break
		}
	}
	select {
	case r := <-done:
		t.Fatalf("ReadFrames returned %d, %v with no frame sent to it", r.n, r.err)
	default:
	}
	c.wakeWith(t, done, 3)
	if got := c.Deferred.Load(); got != 1 {
		t.Errorf("deferred frames = %d, want 1", got)
	}
	// Close wakes a reader asleep in the ring with a write queued.
	if _, err := c.Link.WriteFrames([][]byte{Frame(4)}); err != nil {
		t.Fatal(err)
	}
	done = c.readOne(sizes)
	time.Sleep(50 * time.Millisecond) // let it go to sleep (either way Close must wake it)
	netnstest.WaitReturn(t, "Close with the reader asleep in io_uring_enter", func() { c.Link.Close() })
	select {
	case r := <-done:
		if r.err == nil {
			t.Errorf("ReadFrames after Close = %d, nil; want an error", r.n)
		}
	case <-time.After(Guard):
		t.Fatal("ReadFrames did not return after Close")
	}
}

// FailedWritesCounted: a deferred frame the kernel refuses (tooBig, longer
// than the interface's MTU) is counted as an error; its writer was told it
// succeeded.
func FailedWritesCounted(t *testing.T, c Case, tooBig []byte) {
	c.prepare(t)
	sizes := make([]int, len(c.Bufs))
	c.firstRead(t, sizes)
	if _, err := c.Link.WriteFrames([][]byte{tooBig}); err != nil {
		t.Fatalf("WriteFrames during the dispatch = %v, want it deferred", err)
	}
	c.wakeWith(t, c.readOne(sizes), 3)
	if got := c.Deferred.Load(); got != 1 {
		t.Errorf("deferred frames = %d, want 1", got)
	}
	if got := c.Errors.Load(); got != 1 {
		t.Errorf("deferred frames that failed = %d, want 1", got)
	}
}

type read struct {
	n   int
	err error
}

// readOne starts a ReadFrames.
func (c *Case) readOne(sizes []int) <-chan read {
	done := make(chan read, 1)
	go func() {
		n, err := c.Link.ReadFrames(c.Bufs, sizes)
		done <- read{n, err}
	}()
	return done
}

// wakeWith sends the reader started by readOne the frame marked mark and
// waits for it to return that frame.
func (c *Case) wakeWith(t *testing.T, done <-chan read, mark byte) {
	t.Helper()
	if err := c.Inject(Frame(mark)); err != nil {
		c.Link.Close()
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.n != 1 || r.err != nil || c.Bufs[0][20] != mark {
			t.Fatalf("ReadFrames = %d, %v (mark %d); want the frame marked %d", r.n, r.err, c.Bufs[0][20], mark)
		}
	case <-time.After(Guard):
		c.Link.Close()
		t.Fatal("ReadFrames did not return for the frame the kernel sent")
	}
}

// firstRead reads the frame that starts the first dispatch, then clears
// the deadline: the reader waits through the ring only without one (the
// hang guards are Seen's receive timeout and Close).
func (c *Case) firstRead(t *testing.T, sizes []int) {
	t.Helper()
	// A new interface may still have frames of the kernel's own queued
	// (sent before its IPv6 was turned off): read until a batch with the
	// frame sent comes back short, having emptied the queue.
	c.Poller.SetDeadline(time.Now().Add(Guard))
	for emptied := false; !emptied; {
		if err := c.Inject(Frame(1)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Link.ReadFrames(c.Bufs, sizes)
		if err != nil {
			t.Fatalf("ReadFrames = %d, %v; want the frame the kernel sent", n, err)
		}
		for i := range n {
			emptied = emptied || (n < len(c.Bufs) && sizes[i] > 20 && c.Bufs[i][20] == 1)
		}
	}
	c.Poller.SetDeadline(time.Time{})
}

// DeferredRepliesAllocateNothing: a relay's round on the link, the reader
// woken by a frame and its reply deferred to the next wait, then submitted
// with it through the ring, allocates nothing.
func DeferredRepliesAllocateNothing(t *testing.T, c Case) {
	c.prepare(t)
	sizes := make([]int, len(c.Bufs))
	c.Poller.SetDeadline(time.Time{})
	// The ring wait has no deadline: a lost frame fails the test through
	// Close, which wakes the reader, instead of blocking it.
	guard := time.AfterFunc(Guard, func() { c.Link.Close() })
	defer guard.Stop()
	in, reply, got := Frame(5), [][]byte{Frame(6)}, make([]byte, 2048)
	round := func() {
		if err := c.Inject(in); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Link.ReadFrames(c.Bufs, sizes); err != nil {
			t.Fatalf("ReadFrames: %v", err)
		}
		if _, err := c.Link.WriteFrames(reply); err != nil {
			t.Fatal(err)
		}
	}
	round()
	before := c.Deferred.Load()
	const rounds = 100
	allocs := testing.AllocsPerRun(rounds, func() {
		round()
		// The previous reply, written with the wait this round's frame
		// ended.
		if _, err := unix.Read(c.Seen, got); err != nil {
			t.Fatalf("reading a deferred reply: %v", err)
		}
	})
	if allocs != 0 {
		t.Errorf("a round with a deferred reply allocated %v times, want 0", allocs)
	}
	if n := c.Deferred.Load() - before; n < rounds {
		t.Errorf("%d of %d replies went with a wait, want all", n, rounds)
	}
}

// ReadsInOrder has send hand the link's reader the frames of want, at most
// ahead of them in front of the reads (more than the ring's buffers, within
// the kernel's queue), reads them with read into bufs, and fails unless
// they all come, whole and in order.
func ReadsInOrder(t *testing.T, want [][]byte, ahead int, send func(frames [][]byte) error,
	read func(bufs [][]byte, sizes []int) (int, error), bufs [][]byte) {
	t.Helper()
	sizes := make([]int, len(bufs))
	var got [][]byte
	for sent := 0; len(got) < len(want); {
		if end := min(len(got)+ahead, len(want)); sent < end {
			if err := send(want[sent:end]); err != nil {
				t.Fatalf("sending frames %d to %d: %v", sent, end, err)
			}
			sent = end
		}
		n, err := read(bufs, sizes)
		if err != nil {
			t.Fatalf("ReadFrames after %d frames: %v", len(got), err)
		}
		for i := range n {
			got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames read (-want +got):\n%s", diff)
	}
}
