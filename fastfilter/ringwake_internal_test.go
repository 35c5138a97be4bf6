package fastfilter

import (
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/relaxed"
)

// TestRingReaderWaitsForClaimedSlot: with two receivers (the link and the
// netstack lane), receiver 1 has the receivers' turn and has claimed the
// oldest slot, still copying, when the reader looks, and receiver 2 waits
// for its turn with the next datagram. Receiver 1's datagram then fails its
// checksum and its slot is handed over marked bad. The reader, blocked with
// no deadline, must still return receiver 2's datagram. (Found in review,
// when receivers claimed slots with a compare-and-swap each and receiver 2
// could hand over the next slot first: the reader slept again, and a
// failed slot woke nobody.)
func TestRingReaderWaitsForClaimedSlot(t *testing.T) {
	r, err := NewRing(RingOptions{Packets: 4, SlotSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := r.memory()
	if pos, res := r.lockTail(m); pos != 0 || res != pushed { // receiver 1 takes its turn and position 0
		t.Fatalf("lockTail = %d, %d; want position 0 claimed", pos, res)
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
	accepted := make(chan bool, 1)
	go func() { // receiver 2: position 1, once receiver 1 is done
		accepted <- r.receive(&Datagram{Payload: []byte("good")}, nil)
	}()
	time.Sleep(10 * time.Millisecond) // let the reader find position 0 still claimed
	// Receiver 1: its checksum failed; receive hands the slot over marked.
	s := &m.slots[0]
	s.bad = true
	relaxed.AddSingleWriter(&r.discarded, 1)
	relaxed.StoreRelease(&s.seq, 1)
	relaxed.StoreRelease(&r.tail, 1<<1) // the turn handed on
	select {
	case g := <-got:
		if g != "good" {
			t.Fatalf("Read returned %q, want %q", g, "good")
		}
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatalf("the reader is still blocked with a good datagram held (Len %d)", r.Len())
	}
	if !<-accepted {
		t.Fatal("receive refused a datagram with nothing to verify")
	}
	if st := r.Stats(); st.Enqueued != 1 || st.Read != 1 || st.DroppedBadChecksum != 1 || st.Len != 0 {
		t.Fatalf("stats %+v; want 1 enqueued and read, 1 bad, none held", st)
	}
}
