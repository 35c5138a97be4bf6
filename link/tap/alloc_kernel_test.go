//go:build linux

package tap

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestReadWriteAllocateNothing: writing a frame to the TAP and reading one
// from it allocates nothing (the fast paths write and read here).
func TestReadWriteAllocateNothing(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	name := netnstest.UniqueName("mst")
	dev, _, err := openDevice(name, DefaultMTU, new(DeviceStats))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() }) // the kernel deletes the TAP with it
	ifi := kernelSide(t, dev, name)
	// A broadcast frame of the IEEE local experimental EtherType, which the
	// kernel hands to no protocol.
	frame := make([]byte, 60)
	copy(frame, "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
	frames := [][]byte{frame}
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, DefaultMTU+18)
	}
	sizes := make([]int, len(bufs))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := dev.WriteFrames(frames); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(ifi, frame); err != nil {
			t.Fatal(err)
		}
		if _, err := dev.ReadFrames(bufs, sizes); err != nil {
			t.Fatalf("ReadFrames on %s, waiting for the frame sent out of it: %v", name, err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteFrames+ReadFrames allocated %v times per frame, want 0", allocs)
	}
}

// kernelSide returns an AF_PACKET socket that sends frames out of the TAP
// name (to dev's reader), with the kernel's IPv6 kept off the TAP. It
// returns once the kernel sends what the socket writes (it drops it until
// it has acted on the TAP's carrier), and makes dev's reads give up after
// StateTimeout: a frame lost anyway fails the test instead of blocking
// ReadFrames until the test binary's timeout.
func kernelSide(t *testing.T, dev device, name string) int {
	t.Helper()
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd := netnstest.PacketSocket(t, name, 0)
	netnstest.WaitCarrier(t, nil, name)
	dev.(*tapDevice).poll.SetDeadline(time.Now().Add(netnstest.StateTimeout))
	return fd
}

// BenchmarkWriteFrames: batches of 32 frames written to the TAP (one write
// each), which the kernel receives and drops.
func BenchmarkWriteFrames(b *testing.B) {
	netnstest.Require(b)
	netnstest.RequireTUN(b)
	name := netnstest.UniqueName("mst")
	dev, _, err := openDevice(name, DefaultMTU, new(DeviceStats))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dev.Close() })
	for _, size := range []int{60, 200, 1514} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			frames := make([][]byte, 32)
			for i := range frames {
				frames[i] = make([]byte, size)
				copy(frames[i], "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
			}
			b.ReportAllocs()
			b.SetBytes(int64(size * len(frames)))
			for i := 0; i < b.N; i++ {
				if _, err := dev.WriteFrames(frames); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(frames))/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}
