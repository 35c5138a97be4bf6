//go:build linux

package pollread

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrWoken is what Read returns after Wake.
var ErrWoken = errors.New("pollread: woken to close")

// Unpoll returns a descriptor for f's file that Go's netpoller does not
// watch, and closes f, which takes f's descriptor out of the netpoller. The
// new descriptor is non-blocking and close-on-exec; the returned file's
// Close closes it once no RawConn callback is running on it, without
// waiting for one to return.
func Unpoll(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("pollread: dup: %w", derr)
	}
	// os.NewFile registers a non-blocking descriptor with the netpoller
	// and leaves a blocking one alone: hand it over blocking (the flag
	// belongs to the open file, which f shares until it is closed), then
	// make it non-blocking again.
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("pollread: %w", err)
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		unix.Close(nfd)
		return nil, err
	}
	nf := os.NewFile(uintptr(nfd), name)
	if err := unix.SetNonblock(nfd, true); err != nil {
		nf.Close()
		return nil, fmt.Errorf("pollread: %w", err)
	}
	return nf, nil
}

// Poller parks one reader's thread in poll(2) on a descriptor and an
// eventfd that Wake writes. Read is for one goroutine at a time; Wake and
// Close may be called from any.
type Poller struct {
	efd      int
	fds      [2]unix.PollFd
	drained  bool // poll before the next read: the last read met an empty queue, or lone mode stopped it
	lone     int  // lone mode (OneIsEnough): batches since it began; 0: off
	woken    atomic.Bool
	deadline atomic.Int64 // Unix nanoseconds; 0: none
	yielded  time.Time    // when the reader last went through the scheduler
	waiter   Waiter
}

// A Waiter waits for descriptor fd to be readable, or eventfd efd (Wake),
// in a way of its own, doing more in the same system call (a link's
// pending writes submitted with the wait in one io_uring_enter): it
// reports whether it waited; false lets Read poll(2) as usual. Read calls
// it, on the reader's thread, only when it has no deadline.
type Waiter func(fd, efd int) bool

// SetWaiter sets the Poller's Waiter; call it before the first Read.
func (p *Poller) SetWaiter(w Waiter) { p.waiter = w }

// yieldEvery is how often a busy reader goes through Go's scheduler before
// it parks in poll. The runtime's sysmon takes to be stuck a goroutine whose
// P has scheduled nothing else for 10 ms (forcePreemptNS), even when it is
// only ever in short system calls: it then takes the P away at every one of
// its ticks and, each time it does, polls again every 20 µs, a wake-up of
// its own thread each time (a quarter of a context switch per datagram at
// 10,000 a second). A Gosched every 2 ms marks the P as scheduling, at the
// cost of one pass through the scheduler.
const yieldEvery = 2 * time.Millisecond

// New returns a Poller with its eventfd.
func New() (*Poller, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pollread: eventfd: %w", err)
	}
	return &Poller{efd: efd}, nil
}

// Read calls read, and while read finds nothing parks the calling thread in
// poll(2) until fd is readable or Wake is called (then it returns
// ErrWoken). read reports whether it is done: it got something or failed
// (its error is its caller's to keep). It should call Drained when it
// stopped at EAGAIN, so that the next Read goes to sleep without trying a
// read that would only find the queue empty again: a lone frame then costs
// a poll, the read that brings it and the read that finds the queue empty.
//
// When poll reports an error or hang-up on fd and read still finds
// nothing, Read returns an error rather than poll again at once.
func (p *Poller) Read(fd uintptr, read func(fd uintptr) bool) error {
	skip := p.drained
	p.drained = false
	if !skip && read(fd) {
		return nil
	}
	for {
		if p.waiter != nil && p.deadline.Load() == 0 && !p.woken.Load() {
			p.Yield()
			if p.waiter(int(fd), p.efd) {
				if p.woken.Load() {
					return ErrWoken
				}
				p.drained = false
				if read(fd) {
					return nil
				}
				continue
			}
		}
		revents, err := p.wait(int(fd))
		if err != nil {
			return err
		}
		p.drained = false
		if read(fd) {
			return nil
		}
		if revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return fmt.Errorf("pollread: poll reported events %#x and nothing could be read", revents)
		}
	}
}

// Drained tells Read that the read callback stopped at an empty queue
// after n items, so that the next Read polls first. A batch of one puts the
// Poller in lone mode (OneIsEnough), a larger one takes it out.
func (p *Poller) Drained(n int) {
	p.drained = true
	switch {
	case n == 1 && p.lone == 0:
		p.lone = 1
	case n > 1:
		p.lone = 0
	}
}

// loneProbe is how often, in lone mode, a batch reads on to the empty
// queue anyway, to see whether items have started to queue up.
const loneProbe = 8

// OneIsEnough is for a read callback that gets one item per system call (a
// TAP's read): called after the first item of a batch, it reports whether
// to stop there, without the read that would only find the queue empty.
// It does in lone mode, when the batches were single items (at 10,000
// frames a second nearly all are), except every loneProbe-th batch, which
// reads on and leaves lone mode unless it finds a single item again. The
// next Read polls first: when more is queued, poll returns at once and the
// read that follows takes it, as many system calls as the drain would
// have made; when nothing is, the frame cost one read instead of two.
func (p *Poller) OneIsEnough() bool {
	if p.lone == 0 {
		return false
	}
	p.lone++
	if p.lone%loneProbe == 0 {
		p.lone = 0
		return false
	}
	p.drained = true
	return true
}

// wait blocks until fd or the eventfd is ready and returns fd's events.
func (p *Poller) wait(fd int) (int16, error) {
	p.fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	p.fds[1] = unix.PollFd{Fd: int32(p.efd), Events: unix.POLLIN}
	for {
		if p.woken.Load() {
			return 0, ErrWoken
		}
		p.Yield()
		timeout := -1
		if dl := p.deadline.Load(); dl != 0 {
			left := time.Until(time.Unix(0, dl))
			if left <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timeout = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		n, err := unix.Poll(p.fds[:], timeout)
		switch {
		case err == unix.EINTR, n == 0:
			continue
		case err != nil:
			return 0, fmt.Errorf("pollread: poll: %w", err)
		case p.fds[1].Revents != 0:
			return 0, ErrWoken
		case p.fds[0].Revents != 0:
			return p.fds[0].Revents, nil
		}
	}
}

// SetDeadline makes a Read that would wait past t return
// os.ErrDeadlineExceeded; the zero t waits forever (the default). Tests use
// it so that a frame lost fails them instead of blocking.
func (p *Poller) SetDeadline(t time.Time) {
	if t.IsZero() {
		p.deadline.Store(0)
		return
	}
	p.deadline.Store(t.UnixNano())
}

// Wake makes a Read parked in poll, and every Read after, return ErrWoken.
func (p *Poller) Wake() {
	if p.woken.Swap(true) {
		return
	}
	var one = [8]byte{1}
	_, _ = unix.Write(p.efd, one[:])
}

// Close releases the eventfd. Call it when no Read can be running (after
// Wake, once the reader returned).
func (p *Poller) Close() error {
	return unix.Close(p.efd)
}

// Watched reports whether an epoll instance of this process (Go's
// netpoller, in practice) watches descriptor fd, from /proc/self/fdinfo.
// Tests use it to check that a link's descriptor is out of the netpoller.
func Watched(fd int) (bool, error) {
	dir := "/proc/self/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	want := fmt.Sprintf("tfd: %8d ", fd)
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		if strings.Contains(string(info), want) {
			return true, nil
		}
	}
	return false, nil
}

// File is a descriptor out of the netpoller with its Poller and the lock
// that lets Close wait for the reader: what a link device keeps. Read is
// for one goroutine; writes go through RawConn and never wait.
type File struct {
	f      *os.File
	rc     syscall.RawConn
	poller *Poller
	mu     sync.Mutex // held by Read; Close takes it once the reader is woken
	read   func(fd uintptr) bool
	err    error
	waitFn func(fd uintptr)
}

// Open takes f out of the netpoller (Unpoll) and returns it ready to read;
// f is closed either way.
func Open(f *os.File) (*File, error) {
	nf, err := Unpoll(f)
	if err != nil {
		return nil, err
	}
	rc, err := nf.SyscallConn()
	if err != nil {
		_ = nf.Close()
		return nil, err
	}
	p, err := New()
	if err != nil {
		_ = nf.Close()
		return nil, err
	}
	pf := &File{f: nf, rc: rc, poller: p}
	pf.waitFn = pf.wait
	return pf, nil
}

// RawConn is the descriptor's, for writes and controls.
func (f *File) RawConn() syscall.RawConn { return f.rc }

// Poller is the file's, for Drained and SetDeadline.
func (f *File) Poller() *Poller { return f.poller }

// Read runs Poller.Read with read on the descriptor. After Close it returns
// ErrWoken or the file's closed error.
func (f *File) Read(read func(fd uintptr) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.poller.woken.Load() {
		return ErrWoken
	}
	f.read, f.err = read, nil
	err := f.rc.Control(f.waitFn)
	f.read = nil
	if err != nil {
		return err
	}
	return f.err
}

func (f *File) wait(fd uintptr) { f.err = f.poller.Read(fd, f.read) }

// Close wakes a Read parked in poll, waits for it to return and closes the
// descriptor, so that it is closed when Close returns. Call it once.
func (f *File) Close() error {
	f.poller.Wake()
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.poller.Close()
	return f.f.Close()
}

// Yield passes through Go's scheduler when the reader has not for
// yieldEvery: call it before a wait that Read does not make itself.
func (p *Poller) Yield() {
	if now := time.Now(); now.Sub(p.yielded) >= yieldEvery {
		p.yielded = now
		runtime.Gosched()
	}
}

// WillPoll reports whether the next Read waits before it reads (the last
// read drained the queue).
func (p *Poller) WillPoll() bool { return p.drained }

// Woken reports whether Wake was called.
func (p *Poller) Woken() bool { return p.woken.Load() }

// EventFD is the descriptor Wake writes, for a reader that waits for it in
// a way of its own (deferwrite's ring).
func (p *Poller) EventFD() int { return p.efd }

// Waits reports whether the next Read may wait through the Waiter: it has
// one, no deadline, and was not woken.
func (p *Poller) Waits() bool {
	return p.waiter != nil && p.deadline.Load() == 0 && !p.woken.Load()
}
