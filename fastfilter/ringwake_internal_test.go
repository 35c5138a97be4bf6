package fastfilter

import (
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/relaxed"
)

// TestRingReaderWaitsForClaimedSlot: with two receivers (the link and the
// netstack lane), receiver 1 claims the oldest slot and is still copying
// when receiver 2 hands over the next one and wakes the reader, which finds
// the oldest slot not handed over yet. Receiver 1's datagram then fails its
// checksum and its slot is handed over marked bad. The reader, blocked with
// no deadline, must still return receiver 2's datagram. (Found in review:
// the reader slept again, and a failed slot woke nobody.)
func TestRingReaderWaitsForClaimedSlot(t *testing.T) {
	r, err := NewRing(RingOptions{Packets: 4, SlotSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.tail.CompareAndSwap(0, 1) { // receiver 1 claims position 0
		t.Fatal("claim")
	}
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 256)
		n, _, err := r.Read(buf, time.Time{})
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	if !r.receive(&Datagram{Payload: []byte("good")}, nil) { // receiver 2: position 1
		t.Fatal("receive refused a datagram with nothing to verify")
	}
	time.Sleep(10 * time.Millisecond) // let the reader find position 0 still claimed
	// Receiver 1: its checksum failed; push hands the slot over marked.
	s := &r.mem.Load().slots[0]
	s.bad = true
	r.discarded.Add(1)
	relaxed.StoreRelease(&s.seq, 1)
	select {
	case g := <-got:
		if g != "good" {
			t.Fatalf("Read returned %q, want %q", g, "good")
		}
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatalf("the reader is still blocked with a good datagram held (Len %d)", r.Len())
	}
	if st := r.Stats(); st.Enqueued != 1 || st.Read != 1 || st.DroppedBadChecksum != 1 || st.Len != 0 {
		t.Fatalf("stats %+v; want 1 enqueued and read, 1 bad, none held", st)
	}
}
