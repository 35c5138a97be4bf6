//go:build linux

package tap

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/deferwrite/deferwritetest"
	"github.com/mediastack/mediastack/internal/netnstest"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// deferringTAP opens a TAP with deferred writes and the kernel's side of
// it.
func deferringTAP(t *testing.T) deferwritetest.Case {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	name := netnstest.UniqueName("mst")
	stats := new(DeviceStats)
	dev, _, err := openDevice(name, DefaultMTU, stats)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	d := dev.(*tapDevice)
	if d.deferred == nil {
		t.Skip("io_uring is not available: writes stay direct")
	}
	ifi := kernelSide(t, dev, name)
	return deferwritetest.Case{
		Link:     dev,
		Poller:   d.poll,
		Inject:   func(f []byte) error { _, err := unix.Write(ifi, f); return err },
		Seen:     netnstest.PacketSocket(t, name, htons(unix.ETH_P_ALL)),
		Deferred: &stats.TxDeferred,
		Errors:   &stats.TxDeferredErrors,
		Bufs:     [][]byte{make([]byte, DefaultMTU+18), make([]byte, DefaultMTU+18)},
	}
}

func TestRepliesGoWithTheWait(t *testing.T) {
	deferwritetest.RepliesGoWithTheWait(t, deferringTAP(t))
}

func TestDeferredRepliesAllocateNothing(t *testing.T) {
	deferwritetest.DeferredRepliesAllocateNothing(t, deferringTAP(t))
}
