//go:build linux

package pollread_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/pollread"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// guard bounds every wait of a test, so a bug fails it instead of hanging.
const guard = 10 * time.Second

// reader reads datagrams from the read end of a non-blocking socket pair
// the way the links do: until EAGAIN, telling the Poller it drained.
type reader struct {
	p     *pollread.Poller
	buf   [64]byte
	got   []string
	reads int
	err   error
	lone  bool // ask OneIsEnough after the first datagram of a batch
}

func (r *reader) read(fd uintptr) bool {
	for {
		r.reads++
		n, err := unix.Read(int(fd), r.buf[:])
		switch {
		case err == unix.EAGAIN:
			r.p.Drained(len(r.got))
			return len(r.got) > 0
		case err != nil:
			r.err = err
			return true
		case n == 0:
			r.err = errors.New("end of stream")
			return true
		}
		r.got = append(r.got, string(r.buf[:n]))
		if r.lone && len(r.got) == 1 && r.p.OneIsEnough() {
			return true
		}
	}
}

func socketPair(t *testing.T) (rd, wr int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func newPoller(t *testing.T) *pollread.Poller {
	t.Helper()
	p, err := pollread.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.SetDeadline(time.Now().Add(guard))
	return p
}

// TestReadWaitsForData: a Read with nothing queued parks until a datagram
// comes, then returns it; one queued already is read without waiting.
func TestReadWaitsForData(t *testing.T) {
	rd, wr := socketPair(t)
	r := &reader{p: newPoller(t)}
	done := make(chan error, 1)
	go func() { done <- r.p.Read(uintptr(rd), r.read) }()
	if _, err := unix.Write(wr, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(r.got) != 1 || r.got[0] != "one" || r.err != nil {
		t.Fatalf("read %q (err %v), want [one]", r.got, r.err)
	}
}

// TestDrainedSkipsTheEmptyRead: after a read that stopped at EAGAIN, the
// next Read goes to poll first: a lone datagram costs one read that brings
// it and one that finds the queue empty, not a third.
func TestDrainedSkipsTheEmptyRead(t *testing.T) {
	rd, wr := socketPair(t)
	r := &reader{p: newPoller(t)}
	unix.Write(wr, []byte("a"))
	if err := r.p.Read(uintptr(rd), r.read); err != nil {
		t.Fatal(err)
	}
	if r.reads != 2 {
		t.Fatalf("first Read: %d reads, want 2 (the datagram, then EAGAIN)", r.reads)
	}
	r.got, r.reads = nil, 0
	unix.Write(wr, []byte("b"))
	if err := r.p.Read(uintptr(rd), r.read); err != nil {
		t.Fatal(err)
	}
	if r.reads != 2 || len(r.got) != 1 {
		t.Fatalf("second Read: %d reads, %q, want 2 reads of [b]", r.reads, r.got)
	}
}

// TestLoneMode: datagrams that come one at a time cost one read each, not
// two (OneIsEnough stops after the first, save every eighth batch, which
// probes to the empty queue); datagrams that queue up are all read within
// a probe's period and put the reader back to draining.
func TestLoneMode(t *testing.T) {
	rd, wr := socketPair(t)
	r := &reader{p: newPoller(t), lone: true}
	const lone = 16
	for i := range lone {
		r.got = r.got[:0]
		unix.Write(wr, []byte{'a' + byte(i)})
		if err := r.p.Read(uintptr(rd), r.read); err != nil || len(r.got) != 1 {
			t.Fatalf("Read %d: %v, %q", i, err, r.got)
		}
	}
	// The first Read drains (2 reads), the probes of the 8th and 15th
	// batches too; the others read once.
	if want := lone + 3; r.reads != want {
		t.Errorf("%d lone datagrams took %d reads, want %d (draining each would take %d)", lone, r.reads, want, 2*lone)
	}
	r.got, r.reads = r.got[:0], 0
	for _, m := range []string{"1", "2", "3", "4", "5"} {
		unix.Write(wr, []byte(m))
	}
	reads := 0
	for len(r.got) < 5 {
		if reads++; reads > 8 {
			t.Fatalf("5 queued datagrams not read in 8 Reads: %q", r.got)
		}
		if err := r.p.Read(uintptr(rd), r.read); err != nil {
			t.Fatal(err)
		}
	}
	// Draining again: the next datagram is read, then the empty queue.
	r.got, r.reads = r.got[:0], 0
	unix.Write(wr, []byte("x"))
	if err := r.p.Read(uintptr(rd), r.read); err != nil || r.reads != 2 {
		t.Errorf("after the burst: %v, %d reads, want 2 (draining)", err, r.reads)
	}
}

// TestWakeEndsAParkedRead: Wake returns a Read parked in poll with
// ErrWoken, and every Read after it.
func TestWakeEndsAParkedRead(t *testing.T) {
	rd, _ := socketPair(t)
	r := &reader{p: newPoller(t)}
	r.p.Drained(0) // go straight to poll
	done := make(chan error, 1)
	go func() { done <- r.p.Read(uintptr(rd), r.read) }()
	r.p.Wake()
	if err := <-done; !errors.Is(err, pollread.ErrWoken) {
		t.Fatalf("Read after Wake: %v, want ErrWoken", err)
	}
	r.p.Drained(0)
	if err := r.p.Read(uintptr(rd), r.read); !errors.Is(err, pollread.ErrWoken) {
		t.Fatalf("second Read after Wake: %v, want ErrWoken", err)
	}
}

// TestDeadline: a Read that would wait past its deadline gives up.
func TestDeadline(t *testing.T) {
	rd, _ := socketPair(t)
	r := &reader{p: newPoller(t)}
	r.p.SetDeadline(time.Now().Add(-time.Second))
	if err := r.p.Read(uintptr(rd), r.read); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
}

// TestHangupWithNothingToRead: poll reporting a hang-up that the read
// callback does not turn into an error (it reads nothing) ends Read with an
// error rather than a busy loop.
func TestHangupWithNothingToRead(t *testing.T) {
	fds := make([]int, 2)
	if err := unix.Pipe2(fds, unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	unix.Close(fds[1]) // POLLHUP on the read end
	p := newPoller(t)
	p.Drained(0)
	quiet := func(uintptr) bool { return false }
	if err := p.Read(uintptr(fds[0]), quiet); err == nil {
		t.Fatal("Read on a hung-up pipe that reads nothing returned nil")
	}
}

// TestUnpoll: the file Unpoll returns reads and writes the same open file
// (a datagram written through it arrives), is non-blocking and out of the
// netpoller, and f is closed.
func TestUnpoll(t *testing.T) {
	rd, wr := socketPair(t)
	dup, err := unix.Dup(wr)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(dup), "wr") // non-blocking: in the netpoller
	if watched, err := pollread.Watched(dup); err != nil || !watched {
		t.Fatalf("Watched(a descriptor os.NewFile registered) = %v, %v; want true", watched, err)
	}
	nf, err := pollread.Unpoll(f)
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write through the old file: %v, want os.ErrClosed", err)
	}
	rc, err := nf.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var nonblock bool
	var werr error
	rc.Control(func(fd uintptr) {
		fl, _ := unix.FcntlInt(fd, unix.F_GETFL, 0)
		nonblock = fl&unix.O_NONBLOCK != 0
		_, werr = unix.Write(int(fd), []byte("through"))
	})
	if !nonblock || werr != nil {
		t.Fatalf("new descriptor: non-blocking %v, write error %v; want true, nil", nonblock, werr)
	}
	var nfd int
	rc.Control(func(fd uintptr) { nfd = int(fd) })
	if watched, err := pollread.Watched(nfd); err != nil || watched {
		t.Errorf("Watched(the unpolled descriptor) = %v, %v; want false", watched, err)
	}
	buf := make([]byte, 16)
	n, err := unix.Read(rd, buf)
	if err != nil || string(buf[:n]) != "through" {
		t.Fatalf("read %q, %v; want through", buf[:n], err)
	}
}

// TestReadAllocatesNothing: a Read that waits, reads and returns allocates
// nothing (the links call it per batch).
func TestReadAllocatesNothing(t *testing.T) {
	rd, wr := socketPair(t)
	r := &reader{p: newPoller(t), got: make([]string, 0, 1)}
	read := r.read
	msg := []byte("m")
	allocs := testing.AllocsPerRun(100, func() {
		r.got = r.got[:0]
		unix.Write(wr, msg)
		if err := r.p.Read(uintptr(rd), read); err != nil {
			t.Fatal(err)
		}
	})
	// The callback's string conversion of one byte does not allocate
	// (Go interns single bytes).
	if allocs != 0 {
		t.Errorf("Read allocated %v times, want 0", allocs)
	}
}

func BenchmarkReadOne(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	p, err := pollread.New()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	r := &reader{p: p, got: make([]string, 0, 1)}
	read := r.read
	msg := []byte("m")
	b.ReportAllocs()
	for b.Loop() {
		r.got = r.got[:0]
		unix.Write(fds[1], msg)
		if err := p.Read(uintptr(fds[0]), read); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFileCloseWakesTheReader: File.Close wakes a Read parked in poll
// (or about to park); Read after Close fails.
func TestFileCloseWakesTheReader(t *testing.T) {
	rd, wr := socketPair(t)
	dup, err := unix.Dup(rd)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pollread.Open(os.NewFile(uintptr(dup), "rd"))
	if err != nil {
		t.Fatal(err)
	}
	f.Poller().SetDeadline(time.Now().Add(guard))
	r := &reader{p: f.Poller()}
	unix.Write(wr, []byte("first"))
	if err := f.Read(r.read); err != nil || len(r.got) != 1 {
		t.Fatalf("Read = %v, got %q; want the datagram", err, r.got)
	}
	done := make(chan error, 1)
	go func() { done <- f.Read(r.read) }() // parks: the queue is drained
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, pollread.ErrWoken) {
			t.Errorf("Read parked at Close: %v, want ErrWoken", err)
		}
	case <-time.After(guard):
		t.Fatal("a Read parked at Close did not return")
	}
	if err := f.Read(r.read); err == nil {
		t.Error("Read after Close returned nil")
	}
}
