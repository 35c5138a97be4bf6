//go:build linux

package tap

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/vnet"
)

// TestVnetReadWriteAllocateNothing: in vnet mode, writing a frame, writing
// a packet with a virtio-net header and reading a frame allocate nothing.
func TestVnetReadWriteAllocateNothing(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	name := netnstest.UniqueName("mst")
	dev, _, err := openDeviceMode(name, DefaultMTU, new(DeviceStats), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	pkt := kernelSide(t, dev, name)
	frame := make([]byte, 60)
	copy(frame, "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
	frames := [][]byte{frame}
	vpkts := []vnet.Packet{{Parts: [][]byte{frame[:14], frame[14:]}}}
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, DefaultMTU+18)
	}
	sizes := make([]int, len(bufs))
	vd := dev.(*tapDevice)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := dev.WriteFrames(frames); err != nil {
			t.Fatal(err)
		}
		if _, err := vd.WriteVnet(vpkts); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(pkt, frame); err != nil {
			t.Fatal(err)
		}
		n, err := dev.ReadFrames(bufs, sizes)
		if err != nil || n != 1 || sizes[0] != len(frame) {
			t.Fatalf("ReadFrames = %d (%v), %v; want one %d-byte frame", n, sizes[:n], err, len(frame))
		}
	})
	if allocs != 0 {
		t.Errorf("vnet WriteFrames+WriteVnet+ReadFrames allocated %v times, want 0", allocs)
	}
}
