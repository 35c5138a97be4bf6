//go:build linux

package raw

import (
	"fmt"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// testFrames returns n broadcast frames of size bytes with the IEEE local
// experimental EtherType, which the kernel hands to no protocol.
func testFrames(n, size int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = make([]byte, size)
		copy(frames[i], "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
	}
	return frames
}

// wire opens sockets on both ends of a fresh veth pair, once it carries
// frames: what tx writes, rx reads.
func wire(t testing.TB) (tx, rx *packetSocket) {
	pair := netnstest.NewVethPair(t)
	return openTestSocket(t, pair.Outside, new(DeviceStats)), openTestSocket(t, pair.Inside, new(DeviceStats))
}

// openTestSocket opens a socket on interface name, closed when the test
// ends.
func openTestSocket(t testing.TB, name string, stats *DeviceStats) *packetSocket {
	dev, _, _, err := openSocket(name, "", stats, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev.(*packetSocket)
}

func readBuffers() ([][]byte, []int) {
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 1518)
	}
	return bufs, make([]int, batchSize)
}

// TestReadWriteAllocateNothing: sending a frame with sendmmsg and receiving
// it with recvmmsg allocates nothing (the fast paths write and read here).
func TestReadWriteAllocateNothing(t *testing.T) {
	tx, rx := wire(t)
	frames := testFrames(1, 60)
	bufs, sizes := readBuffers()
	// A hang guard for the whole run, set once: a frame the kernel lost
	// fails the test instead of blocking ReadFrames until the test binary's
	// timeout.
	rx.poll.SetDeadline(time.Now().Add(netnstest.StateTimeout))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := tx.WriteFrames(frames); err != nil {
			t.Fatal(err)
		}
		if _, err := rx.ReadFrames(bufs, sizes); err != nil {
			t.Fatalf("ReadFrames on %s, waiting for the frame written on %s: %v", rx.iface, tx.iface, err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteFrames+ReadFrames allocated %v times per frame, want 0", allocs)
	}
}

var benchSizes = []int{60, 200, 1514}

// BenchmarkWriteFrames: batches of 32 frames through sendmmsg into a veth.
func BenchmarkWriteFrames(b *testing.B) {
	tx, _ := wire(b)
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			frames := testFrames(batchSize, size)
			b.ReportAllocs()
			b.SetBytes(int64(size * len(frames)))
			for i := 0; i < b.N; i++ {
				if _, err := tx.WriteFrames(frames); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(frames))/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// BenchmarkSendReceive: batches of 32 frames written on one end of a veth
// and read back with recvmmsg on the other.
func BenchmarkSendReceive(b *testing.B) {
	tx, rx := wire(b)
	bufs, sizes := readBuffers()
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			frames := testFrames(batchSize, size)
			b.ReportAllocs()
			b.SetBytes(int64(size * len(frames)))
			for i := 0; i < b.N; i++ {
				if _, err := tx.WriteFrames(frames); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < len(frames); {
					n, err := rx.ReadFrames(bufs, sizes)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
			b.ReportMetric(float64(b.N*len(frames))/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}
