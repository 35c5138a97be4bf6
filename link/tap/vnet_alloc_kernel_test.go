//go:build linux

package tap

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/tcpoffload"
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
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	pkt, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(pkt) })
	index, err := interfaceIndex(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(pkt, &unix.SockaddrLinklayer{Ifindex: index}); err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 60)
	copy(frame, "\xff\xff\xff\xff\xff\xff\x02\x00\x5e\x00\x53\x01\x88\xb5")
	frames := [][]byte{frame}
	vpkts := []tcpoffload.VnetPacket{{Parts: [][]byte{frame[:14], frame[14:]}}}
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, DefaultMTU+18)
	}
	sizes := make([]int, len(bufs))
	vd := dev.(*tapDevice)
	// What the AF_PACKET socket sends goes out only once the kernel has
	// acted on the TAP's carrier; and a frame lost anyway fails the test
	// instead of blocking ReadFrames until the test binary's timeout.
	netnstest.WaitCarrier(t, nil, name)
	if err := dev.(*tapDevice).f.SetReadDeadline(time.Now().Add(netnstest.StateTimeout)); err != nil {
		t.Fatal(err)
	}
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
