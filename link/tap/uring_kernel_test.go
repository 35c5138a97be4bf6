//go:build linux

package tap

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ringGuard bounds the waits of the test below.
const ringGuard = netnstest.StateTimeout

// TestRepliesGoWithTheWait: a frame written while the reader dispatches
// (between two ReadFrames, as a relay's reply) is written by the next
// ReadFrames together with its wait for a frame, in one io_uring_enter:
// the kernel has it while the reader sleeps, the next frame wakes the
// reader, and Close wakes a reader asleep there.
func TestRepliesGoWithTheWait(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	name := netnstest.UniqueName("mst")
	stats := new(DeviceStats)
	dev, _, err := openDevice(name, DefaultMTU, stats)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			dev.Close()
		}
	})
	d := dev.(*tapDevice)
	if d.deferred == nil {
		t.Skip("io_uring is not available: writes stay direct")
	}
	ifi := kernelSide(t, dev, name)
	// A socket that sees the frames the kernel receives from the TAP.
	seen := packetSocket(t, name, htons(unix.ETH_P_ALL))
	if err := unix.SetsockoptTimeval(seen, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: int64(ringGuard / time.Second)}); err != nil {
		t.Fatal(err)
	}
	// Frames of the IEEE local experimental EtherType, which the kernel
	// hands to no protocol.
	frame := func(mark byte) []byte {
		f := make([]byte, 60)
		copy(f, "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
		f[20] = mark
		return f
	}
	// Room for more than one frame: a read that fills the batch does not
	// find the queue empty, and the next ReadFrames reads before it waits.
	bufs := [][]byte{make([]byte, DefaultMTU+18), make([]byte, DefaultMTU+18)}
	sizes := make([]int, len(bufs))
	if _, err := unix.Write(ifi, frame(1)); err != nil {
		t.Fatal(err)
	}
	if n, err := dev.ReadFrames(bufs, sizes); n != 1 || err != nil {
		t.Fatalf("ReadFrames = %d, %v; want the frame the kernel sent", n, err)
	}
	// The reader waits through the ring only without a deadline; the
	// hang guard is the kernel socket's receive timeout and Close.
	d.poll.SetDeadline(time.Time{})
	if _, err := dev.WriteFrames([][]byte{frame(2)}); err != nil {
		t.Fatal(err)
	}
	type read struct {
		n   int
		err error
	}
	done := make(chan read, 1)
	readOne := func() {
		go func() {
			n, err := dev.ReadFrames(bufs, sizes)
			done <- read{n, err}
		}()
	}
	readOne()
	// The reply reaches the kernel while the reader waits.
	got := make([]byte, 2048)
	for {
		n, err := unix.Read(seen, got)
		if err != nil {
			dev.Close()
			closed = true
			t.Fatalf("waiting for the frame written during the dispatch: %v", err)
		}
		if n >= 21 && bytes.Equal(got[:14], frame(2)[:14]) && got[20] == 2 {
			break
		}
	}
	select {
	case r := <-done:
		t.Fatalf("ReadFrames returned %d, %v with no frame sent to it", r.n, r.err)
	default:
	}
	if _, err := unix.Write(ifi, frame(3)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.n != 1 || r.err != nil || bufs[0][20] != 3 {
			t.Fatalf("ReadFrames = %d, %v (mark %d); want the frame marked 3", r.n, r.err, bufs[0][20])
		}
	case <-time.After(ringGuard):
		t.Fatal("ReadFrames did not return for the frame the kernel sent")
	}
	if got := stats.TxDeferred.Load(); got != 1 {
		t.Errorf("TxDeferred = %d, want 1", got)
	}
	// Close wakes a reader asleep in the ring with a write queued.
	if _, err := dev.WriteFrames([][]byte{frame(4)}); err != nil {
		t.Fatal(err)
	}
	readOne()
	time.Sleep(50 * time.Millisecond) // let it go to sleep (either way Close must wake it)
	netnstest.WaitReturn(t, "Close with the reader asleep in io_uring_enter", func() { dev.Close() })
	closed = true
	select {
	case r := <-done:
		if r.err == nil {
			t.Errorf("ReadFrames after Close = %d, nil; want an error", r.n)
		}
	case <-time.After(ringGuard):
		t.Fatal("ReadFrames did not return after Close")
	}
}
