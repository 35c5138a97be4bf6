//go:build linux

package raw

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/deferwrite/deferwritetest"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
)

// ringWire is wire with the reading end bound to the calling goroutine,
// locked to its thread, as the read loop binds it; it fails under CI=true
// where the kernel cannot receive through the ring. A frame lost would
// leave ReadFrames waiting (the ring has no deadline): the socket is
// closed after the hang guard, which fails the test instead.
func ringWire(t *testing.T) (tx, rx *packetSocket) {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	tx, rx = wire(t)
	rx.BindReader(1518)
	if !rx.ringRead {
		if os.Getenv("CI") == "true" {
			t.Fatal("the socket does not receive through io_uring (CI=true: CI's kernel can)")
		}
		t.Skip("this kernel cannot receive through io_uring")
	}
	guard := time.AfterFunc(netnstest.StateTimeout, func() { rx.Close() })
	t.Cleanup(func() { guard.Stop() })
	return tx, rx
}

// TestRingReceivesFramesInOrder: frames sent on the other end, more than
// the ring has buffers and faster than they are read, come through the
// ring whole and in order, counted in RxRing.
func TestRingReceivesFramesInOrder(t *testing.T) {
	tx, rx := ringWire(t)
	const total = 600
	want := testFrames(total, 60)
	for i, f := range want {
		binary.BigEndian.PutUint32(f[14:], uint32(i))
		want[i] = append(f, make([]byte, i%1400)...)
	}
	bufs, _ := readBuffers()
	send := func(frames [][]byte) error { _, err := tx.WriteFrames(frames); return err }
	deferwritetest.ReadsInOrder(t, want, 300, send, rx.ReadFrames, bufs)
	if n := rx.stats.RxRing.Load(); n != total {
		t.Errorf("RxRing = %d, want %d", n, total)
	}
}

// TestRingReadWriteAllocateNothing: a frame received through the ring and
// one written (deferred to the next wait) allocate nothing.
func TestRingReadWriteAllocateNothing(t *testing.T) {
	tx, rx := ringWire(t)
	frames := testFrames(1, 60)
	bufs, sizes := readBuffers()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := rx.WriteFrames(frames); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.WriteFrames(frames); err != nil {
			t.Fatal(err)
		}
		if _, err := rx.ReadFrames(bufs, sizes); err != nil {
			t.Fatalf("ReadFrames: %v", err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteFrames+ReadFrames through the ring allocated %v times per frame, want 0", allocs)
	}
}

// TestRingClose: Close wakes a reader parked in the ring, or finds it
// between reads; either way ReadFrames returns link.ErrClosed and keeps
// returning it.
func TestRingClose(t *testing.T) {
	for _, during := range []bool{true, false} {
		t.Run(map[bool]string{true: "while reading", false: "while dispatching"}[during], func(t *testing.T) {
			tx, rx := ringWire(t)
			bufs, sizes := readBuffers()
			if _, err := tx.WriteFrames(testFrames(1, 60)); err != nil {
				t.Fatal(err)
			}
			if _, err := rx.ReadFrames(bufs, sizes); err != nil {
				t.Fatal(err)
			}
			closed := make(chan error, 1)
			if during {
				go func() { closed <- rx.Close() }()
			} else {
				closed <- rx.Close()
			}
			for range 2 {
				if _, err := rx.ReadFrames(bufs, sizes); !errors.Is(err, link.ErrClosed) {
					t.Errorf("ReadFrames = %v, want link.ErrClosed", err)
				}
			}
			if err := <-closed; err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}
