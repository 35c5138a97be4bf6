//go:build linux

package raw

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/deferwrite/deferwritetest"
	"github.com/mediastack/mediastack/internal/netnstest"
)

// deferringSocket opens a socket with deferred writes on one end of a
// fresh veth pair and a plain AF_PACKET socket on the other, the kernel's
// side.
func deferringSocket(t *testing.T) deferwritetest.Case {
	pair := netnstest.NewVethPair(t)
	stats := new(DeviceStats)
	s := openTestSocket(t, pair.Inside, stats)
	if s.deferred == nil {
		t.Skip("io_uring is not available: writes stay direct")
	}
	peer := netnstest.PacketSocket(t, pair.Outside, htons(unix.ETH_P_ALL))
	bufs, _ := readBuffers()
	return deferwritetest.Case{
		Link:     s,
		Poller:   s.poll,
		Inject:   func(f []byte) error { _, err := unix.Write(peer, f); return err },
		Seen:     peer,
		Deferred: &stats.TxDeferred,
		Errors:   &stats.TxDeferredErrors,
		Bufs:     bufs,
	}
}

func TestRepliesGoWithTheWait(t *testing.T) {
	deferwritetest.RepliesGoWithTheWait(t, deferringSocket(t))
}

func TestDeferredRepliesAllocateNothing(t *testing.T) {
	deferwritetest.DeferredRepliesAllocateNothing(t, deferringSocket(t))
}

func TestDeferredWriteErrorsCounted(t *testing.T) {
	c := deferringSocket(t)
	tooBig := deferwritetest.Frame(7)
	tooBig = append(tooBig, make([]byte, 1600-len(tooBig))...) // the veth's MTU is 1500
	deferwritetest.FailedWritesCounted(t, c, tooBig)
}
