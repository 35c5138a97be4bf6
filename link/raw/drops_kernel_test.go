//go:build linux

package raw_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/raw"
)

// TestQueueDropsCounted: frames that arrive while nobody reads the socket
// overflow its receive buffer (or the interface's backlog before it); once
// the reader runs, every frame sent was either read or counted as a link
// drop (queue-full, interface-dropped). Drops may count a stray frame of
// the kernel's too, hence a margin of 0.1% above.
func TestQueueDropsCounted(t *testing.T) {
	wire := netnstest.NewVethPair(t)
	rx := newEndpoint(t, raw.Options{Interface: wire.Outside})
	tx := newEndpoint(t, raw.Options{Interface: wire.Inside})
	const etherType = 0x88b5 // IEEE local experimental: nothing else on the wire has it
	var seen atomic.Uint64
	rx.SetFrameHook(func(f []byte) link.Verdict {
		if len(f) >= 14 && binary.BigEndian.Uint16(f[12:]) == etherType {
			seen.Add(1)
		}
		return link.Handled
	})

	frame := make([]byte, 1400)
	copy(frame, rx.LinkAddress())
	copy(frame[6:], tx.LinkAddress())
	binary.BigEndian.PutUint16(frame[12:], etherType)
	batch := [][]byte{frame, frame, frame, frame, frame, frame, frame, frame}
	var sent uint64
	for sent < 20000 {
		n, err := tx.WriteFrames(batch)
		sent += uint64(n)
		if err != nil && !errors.Is(err, link.ErrQueueFull) {
			t.Fatal(err)
		}
	}
	rx.Attach(nullDispatcher{}) // only now does the reader start

	var dropped uint64
	var drops []link.Drop
	netnstest.WaitFor(t, hangGuard, "every frame read or counted as dropped", func() error {
		drops = rx.AppendDrops(drops[:0])
		dropped = 0
		for _, d := range drops {
			dropped += d.Packets
		}
		if got := seen.Load() + dropped; got < sent || got > sent+sent/1000 {
			return fmt.Errorf("sent %d, read %d + dropped %d (%v)", sent, seen.Load(), dropped, drops)
		}
		return nil
	})
	if rx.DeviceStats().RxQueueFull.Load() == 0 {
		t.Errorf("no queue-full drops with nobody reading %d frames: %v", sent, drops)
	}
	t.Logf("sent %d, read %d, dropped %d: %v", sent, seen.Load(), dropped, drops)
}
