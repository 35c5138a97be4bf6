package fastfilter_test

import (
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mediastack/mediastack/fastfilter"
)

// TestRingWakesBlockedReader: a receiver hands each slot over with a plain
// release store and then looks for waiters, while a reader blocked with no
// deadline registered as a waiter and then looked at the slot; on x86 each
// load may pass the other side's buffered store, so both could miss each
// other and the reader sleep with a datagram held. The reader must never
// stall. Datagrams are pushed one at a time at varying delays so that they
// land around the reader's wait. (Found in review: it stalled in 3 of 8
// runs of a few million datagrams before wait looked at tail.) MEDIASTACK_RING_WAKE_ITERS
// sets the number of datagrams (default 200,000).
func TestRingWakesBlockedReader(t *testing.T) {
	iters := 200000
	if s := os.Getenv("MEDIASTACK_RING_WAKE_ITERS"); s != "" {
		iters, _ = strconv.Atoi(s)
	}
	r := newRing(t, fastfilter.RingOptions{Packets: 8})
	var done atomic.Int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			if _, _, err := r.ReadPacket(buf, time.Time{}); err != nil {
				return
			}
			done.Add(1)
		}
	}()
	d := &fastfilter.Datagram{Payload: make([]byte, 1400)}
	var sent int64
	for i := range iters {
		for j := range (i * 7) % 300 { // land around the reader's wait
			runtime.KeepAlive(j)
		}
		r.Receive(d)
		sent++
		start := time.Now()
		for spins := 0; done.Load() != sent; spins++ {
			if spins%1024 == 1023 {
				if time.Since(start) > 30*time.Second { // a hang guard, not a timing assertion
					t.Fatalf("datagram %d: the reader is asleep with %d held", i, r.Len())
				}
				runtime.Gosched()
			}
		}
	}
	r.Close()
	select {
	case <-readerDone:
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatal("the reader still runs a minute after Close")
	}
}
