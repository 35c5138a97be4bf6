//go:build linux

package tap

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/deferwrite/deferwritetest"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
)

// ringTAP opens a TAP (vnet or not) and binds its reads to the calling
// goroutine, locked to its thread, as the read loop does; it fails under
// CI=true where the kernel cannot read through the ring. A frame lost
// would leave ReadFrames waiting (the ring has no deadline): the device is
// closed after the hang guard, which fails the test instead.
func ringTAP(t *testing.T, vnet bool) (*tapDevice, string, int) {
	t.Helper()
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	name := netnstest.UniqueName("mst")
	stats := new(DeviceStats)
	dev, _, err := openDeviceMode(name, DefaultMTU, stats, vnet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	d := dev.(*tapDevice)
	ifi := kernelSide(t, dev, name)
	d.BindReader(DefaultMTU + 18)
	if !d.ringRead {
		if os.Getenv("CI") == "true" {
			t.Fatal("the TAP does not read through io_uring (CI=true: CI's kernel can)")
		}
		t.Skip("this kernel cannot read through io_uring")
	}
	guard := time.AfterFunc(netnstest.StateTimeout, func() { dev.Close() })
	t.Cleanup(func() { guard.Stop() })
	return d, name, ifi
}

// localFrame is a broadcast frame of the IEEE local experimental EtherType
// (which the kernel hands to no protocol) carrying seq, size bytes long.
func localFrame(seq, size int) []byte {
	f := make([]byte, size)
	copy(f, "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
	binary.BigEndian.PutUint32(f[14:], uint32(seq))
	for i := 18; i < size; i++ {
		f[i] = byte(seq + i)
	}
	return f
}

// TestRingReadsFramesInOrder: frames the kernel sends out of the TAP, more
// than the ring has buffers and sent faster than they are read, come
// through the ring whole and in order, counted in RxRing.
func TestRingReadsFramesInOrder(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "vnet"}[vnet], func(t *testing.T) {
			d, _, ifi := ringTAP(t, vnet)
			const total = 600
			var want [][]byte
			for i := 0; i < total; i++ {
				want = append(want, localFrame(i, 60+i%1400))
			}
			bufs, _ := tapBufs()
			send := func(frames [][]byte) error { // a TAP takes one frame per write
				for _, f := range frames {
					if _, err := unix.Write(ifi, f); err != nil {
						return err
					}
				}
				return nil
			}
			deferwritetest.ReadsInOrder(t, want, 300, send, d.ReadFrames, bufs)
			if n := d.stats.RxRing.Load(); n != total {
				t.Errorf("RxRing = %d, want %d", n, total)
			}
		})
	}
}

// TestRingReadWriteAllocateNothing: a frame read through the ring and one
// written (deferred to the next wait) allocate nothing.
func TestRingReadWriteAllocateNothing(t *testing.T) {
	d, name, ifi := ringTAP(t, true)
	frame := localFrame(1, 60)
	frames := [][]byte{frame}
	bufs, sizes := tapBufs()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := d.WriteFrames(frames); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(ifi, frame); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadFrames(bufs, sizes); err != nil {
			t.Fatalf("ReadFrames on %s, waiting for the frame sent out of it: %v", name, err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteFrames+ReadFrames through the ring allocated %v times per frame, want 0", allocs)
	}
}

// TestRingCloseDeletesTheTAP: Close wakes a reader parked in the ring, or
// finds it dispatching (it returns at its next read), and once both have
// returned the TAP is gone: the ring's read held the TAP and was cancelled
// on the reader's thread.
func TestRingCloseDeletesTheTAP(t *testing.T) {
	for _, tc := range []struct {
		name string
		// closeDuring closes d during the reader's next ReadFrames, or
		// before it.
		closeDuring bool
	}{
		{"while reading", true},
		{"while dispatching", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, name, ifi := ringTAP(t, false)
			bufs, sizes := tapBufs()
			if _, err := unix.Write(ifi, localFrame(1, 60)); err != nil {
				t.Fatal(err)
			}
			if _, err := d.ReadFrames(bufs, sizes); err != nil {
				t.Fatal(err)
			}
			closed := make(chan error, 1)
			if tc.closeDuring {
				// It may also come before the reader parks: the same end.
				go func() { closed <- d.Close() }()
			} else {
				closed <- d.Close()
			}
			if _, err := d.ReadFrames(bufs, sizes); !errors.Is(err, link.ErrClosed) {
				t.Errorf("ReadFrames = %v, want link.ErrClosed", err)
			}
			if err := <-closed; err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := net.InterfaceByName(name); err == nil {
				t.Errorf("TAP %s still there after Close and the reader returned", name)
			}
		})
	}
}

func tapBufs() ([][]byte, []int) {
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, DefaultMTU+18)
	}
	return bufs, make([]int, len(bufs))
}
