//go:build linux

package raw

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/linkstats"
	"github.com/mediastack/mediastack/internal/netnstest"
)

// deferGuard bounds the waits of the tests below.
const deferGuard = netnstest.StateTimeout

// peerSocket opens a plain AF_PACKET socket on name, the far end of the
// link under test: it writes frames with write(2) and reads what reaches
// the interface, with deferGuard as its receive timeout.
func peerSocket(t *testing.T, name string) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	index, err := linkstats.InterfaceIndex(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: int64(deferGuard / time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		t.Fatal(err)
	}
	return fd
}

// markedFrame is a broadcast frame of the IEEE local experimental
// EtherType, which the kernel hands to no protocol, carrying mark.
func markedFrame(mark byte) []byte {
	f := testFrames(1, 60)[0]
	f[20] = mark
	return f
}

// readMark reads frames on the peer until one carrying mark arrives.
func readMark(t *testing.T, peer int, mark byte) {
	t.Helper()
	got := make([]byte, 2048)
	for {
		n, err := unix.Read(peer, got)
		if err != nil {
			t.Fatalf("waiting for the frame marked %d: %v", mark, err)
		}
		if n >= 21 && got[12] == 0x88 && got[13] == 0xb5 && got[20] == mark {
			return
		}
	}
}

// deferringSocket opens the socket under test on one end of a fresh veth
// pair and a peer socket on the other.
func deferringSocket(t *testing.T) (s *packetSocket, stats *DeviceStats, peer int) {
	pair := netnstest.NewVethPair(t)
	stats = new(DeviceStats)
	dev, _, _, err := openSocket(pair.Inside, "", stats, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	s = dev.(*packetSocket)
	if s.deferred == nil {
		t.Skip("io_uring is not available: writes stay direct")
	}
	return s, stats, peerSocket(t, pair.Outside)
}

// TestRepliesGoWithTheWait: a frame written while the reader dispatches
// (between two ReadFrames, as a relay's reply) is written by the next
// ReadFrames together with its wait for a frame, in one io_uring_enter:
// the kernel has it while the reader sleeps, the next frame wakes the
// reader, and Close wakes a reader asleep there.
func TestRepliesGoWithTheWait(t *testing.T) {
	s, stats, peer := deferringSocket(t)
	bufs, sizes := readBuffers()
	if _, err := unix.Write(peer, markedFrame(1)); err != nil {
		t.Fatal(err)
	}
	s.poll.SetDeadline(time.Now().Add(deferGuard))
	if n, err := s.ReadFrames(bufs, sizes); n != 1 || err != nil || bufs[0][20] != 1 {
		t.Fatalf("ReadFrames = %d, %v; want the frame the peer sent", n, err)
	}
	// The reader waits through the ring only without a deadline; the
	// hang guard is the peer's receive timeout and Close.
	s.poll.SetDeadline(time.Time{})
	if _, err := s.WriteFrames([][]byte{markedFrame(2)}); err != nil {
		t.Fatal(err)
	}
	type read struct {
		n   int
		err error
	}
	done := make(chan read, 1)
	readOne := func() {
		go func() {
			n, err := s.ReadFrames(bufs, sizes)
			done <- read{n, err}
		}()
	}
	readOne()
	// The reply reaches the peer while the reader waits.
	func() {
		defer func() {
			if t.Failed() {
				s.Close()
			}
		}()
		readMark(t, peer, 2)
	}()
	select {
	case r := <-done:
		t.Fatalf("ReadFrames returned %d, %v with no frame sent to it", r.n, r.err)
	default:
	}
	if _, err := unix.Write(peer, markedFrame(3)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.n != 1 || r.err != nil || bufs[0][20] != 3 {
			t.Fatalf("ReadFrames = %d, %v (mark %d); want the frame marked 3", r.n, r.err, bufs[0][20])
		}
	case <-time.After(deferGuard):
		s.Close()
		t.Fatal("ReadFrames did not return for the frame the peer sent")
	}
	if got := stats.TxDeferred.Load(); got != 1 {
		t.Errorf("TxDeferred = %d, want 1", got)
	}
	if got := stats.TxDeferredErrors.Load(); got != 0 {
		t.Errorf("TxDeferredErrors = %d, want 0", got)
	}
	// Close wakes a reader asleep in the ring with a write queued.
	if _, err := s.WriteFrames([][]byte{markedFrame(4)}); err != nil {
		t.Fatal(err)
	}
	readOne()
	time.Sleep(50 * time.Millisecond) // let it go to sleep (either way Close must wake it)
	netnstest.WaitReturn(t, "Close with the reader asleep in io_uring_enter", func() { s.Close() })
	select {
	case r := <-done:
		if r.err == nil {
			t.Errorf("ReadFrames after Close = %d, nil; want an error", r.n)
		}
	case <-time.After(deferGuard):
		t.Fatal("ReadFrames did not return after Close")
	}
}

// TestDeferredRepliesAllocateNothing: a relay's round on the link, the
// reader woken by a frame and its reply deferred to the next wait, then
// submitted with it through the ring, allocates nothing.
func TestDeferredRepliesAllocateNothing(t *testing.T) {
	s, stats, peer := deferringSocket(t)
	bufs, sizes := readBuffers()
	// The ring wait has no deadline: a lost frame fails the test through
	// Close, which wakes the reader, instead of blocking it.
	guard := time.AfterFunc(deferGuard, func() { s.Close() })
	defer guard.Stop()
	in, reply, got := markedFrame(5), [][]byte{markedFrame(6)}, make([]byte, 2048)
	round := func() {
		if _, err := unix.Write(peer, in); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadFrames(bufs, sizes); err != nil {
			t.Fatalf("ReadFrames: %v", err)
		}
		if _, err := s.WriteFrames(reply); err != nil {
			t.Fatal(err)
		}
	}
	round()
	allocs := testing.AllocsPerRun(100, func() {
		round()
		// The previous reply, written with the wait this round's frame
		// ended.
		if _, err := unix.Read(peer, got); err != nil {
			t.Fatalf("reading a deferred reply: %v", err)
		}
	})
	if allocs != 0 {
		t.Errorf("a round with a deferred reply allocated %v times, want 0", allocs)
	}
	if stats.TxDeferred.Load() == 0 {
		t.Error("TxDeferred = 0: no reply went with a wait")
	}
}
