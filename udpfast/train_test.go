package udpfast_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/udpfast"
	"github.com/mediastack/mediastack/udpfast/udpfasttest"
)

// trainBatch is a SendBatch that exercises every way a train starts and
// ends: runs to two destinations, a shorter last datagram, a longer one
// after it, an empty payload, a lone datagram between trains, more than
// ethlink.MaxUDPSegmentsPerWrite datagrams, and more than 64 KB of payload.
func trainBatch(fam family) ([][]byte, []netip.AddrPort) {
	a, b := netip.AddrPortFrom(fam.b, sink), netip.AddrPortFrom(fam.b, sink+1)
	var payloads [][]byte
	var dsts []netip.AddrPort
	add := func(n, size int, dst netip.AddrPort) {
		for range n {
			p := make([]byte, size)
			if size >= 8 {
				p = frames.Seq(p, uint64(len(payloads)))
			}
			payloads = append(payloads, p)
			dsts = append(dsts, dst)
		}
	}
	add(20, 172, a)
	add(1, 50, a)  // shorter: ends the train
	add(1, 172, a) // longer than the one before: a new train
	add(3, 100, b)
	add(1, 0, b)
	add(1, 100, a) // alone between two trains
	add(70, 172, b)
	add(60, 1200, a)
	return payloads, dsts
}

// TestSendBatchTrains: on a link that segments UDP, SendBatch writes runs
// of datagrams as trains, and what the kernel cuts them into (emulated by
// linktest.CutUDPTrain, partial checksums and all) is, frame for frame,
// what SendBatch writes on a link that does not segment; with DF the IPv4 IDs
// count up within a train, as Linux numbers the datagrams it cuts.
func TestSendBatchTrains(t *testing.T) {
	for _, fam := range []family{v4, v6} {
		for _, df := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/df=%v", fam.name, df), func(t *testing.T) {
				payloads, dsts := trainBatch(fam)
				run := func(segment bool) ([][]byte, udpfast.Stats, *sinkStack) {
					s := newSinkStackSegmenting(t, nil, segment)
					snd := s.sender(t, netip.AddrPortFrom(fam.a, rtp), &udpfasttest.Fallback{}, udpfast.Options{AllowFragmentation: !df})
					if err := snd.Send([]byte("first"), dsts[0]); err != nil { // makes the port's entry (static: fast)
						t.Fatal(err)
					}
					s.sink.Record(true)
					if n, err := snd.SendBatch(payloads, dsts); n != len(payloads) || err != nil {
						t.Fatalf("SendBatch = %d, %v; want %d", n, err, len(payloads))
					}
					return s.sink.Frames(), snd.Stats(), s
				}
				want, plain, _ := run(false)
				got, st, s := run(true)
				if len(got) != len(want) {
					t.Fatalf("the segmenting link carried %d datagrams, want %d", len(got), len(want))
				}
				// Trains: 20 of 172 and the 50 that ends them; the next 172
				// alone; 3 of 100 (the empty one and the 100 after it
				// alone); 64 + 6 of 172; 54 + 6 of 1200.
				wantTrains := uint64(6)
				if st.Trains != wantTrains || s.vsink.Trains != wantTrains {
					t.Errorf("trains: sender %d, link %d; want %d", st.Trains, s.vsink.Trains, wantTrains)
				}
				if st.Fast != uint64(len(payloads))+1 || plain.Fast != st.Fast || st.FallbackTotal() != 0 {
					t.Errorf("fast datagrams: %d with trains, %d without, %d through netstack; want %d, the first too (a static neighbour)", st.Fast, plain.Fast, st.FallbackTotal(), len(payloads)+1)
				}
				if st.LinkWrites >= plain.LinkWrites+wantTrains {
					t.Errorf("%d link writes with trains, %d without", st.LinkWrites, plain.LinkWrites)
				}
				for i := range got {
					g, w := decodeFrame(t, got[i]), decodeFrame(t, want[i])
					if !g.UDPChecksumValid || (fam.name == "v4" && !g.IPChecksumValid) {
						t.Fatalf("datagram %d cut from a train has a bad checksum: %+v", i, g)
					}
					if df && fam.name == "v4" {
						// Linux numbers the datagrams of a train 0, 1, 2...
						// from the first one's ID, 0 with DF.
						if prev := decodeFrame(t, got[max(i-1, 0)]).ID; g.ID != 0 && (i == 0 || g.ID != prev+1) {
							t.Fatalf("datagram %d has IPv4 ID %d after %d; want 0 or %d", i, g.ID, prev, prev+1)
						}
						g.ID, g.IPChecksum, w.IPChecksum = w.ID, 0, 0
					}
					if diff := cmp.Diff(w, g); diff != "" {
						t.Fatalf("datagram %d (-without trains +with):\n%s", i, diff)
					}
				}
			})
		}
	}
}

// TestTrainRefusedFallsBack: a train the link refuses goes through netstack,
// every datagram of it, in order, counted as queue-full.
func TestTrainRefusedFallsBack(t *testing.T) {
	s := newSinkStackSegmenting(t, nil, true)
	fb := &udpfasttest.Fallback{}
	snd := s.sender(t, netip.AddrPortFrom(v4.a, rtp), fb, udpfast.Options{})
	dst := netip.AddrPortFrom(v4.b, sink)
	payloads := make([][]byte, 10)
	for i := range payloads {
		payloads[i] = frames.Seq(make([]byte, 64), uint64(i))
	}
	if err := snd.Send([]byte("first"), dst); err != nil { // makes the entry
		t.Fatal(err)
	}
	s.sink.SetRoom(0)
	if n, err := snd.SendBatch(payloads, []netip.AddrPort{dst}); n != 10 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	var want []udpfasttest.Datagram
	for _, p := range payloads {
		want = append(want, udpfasttest.Datagram{Payload: p, Dst: dst})
	}
	if diff := cmp.Diff(want, fb.Datagrams(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("datagrams through netstack (-want +got):\n%s", diff)
	}
	if got := snd.Stats(); got.Fallback(udpfast.ReasonQueueFull) != 10 || got.FallbackTotal() != 10 || got.Fast != 1 || got.Trains != 0 {
		t.Errorf("stats %+v; want 10 queue-full fallbacks, only the first datagram fast", got)
	}
}

// TestSendBatchTrainsAllocateNothing: a batch sent as trains allocates
// nothing per datagram.
func TestSendBatchTrainsAllocateNothing(t *testing.T) {
	s := newSinkStackSegmenting(t, nil, true)
	s.vsink.CountOnly = true // the test double's cutting allocates
	snd := s.sender(t, netip.AddrPortFrom(v4.a, rtp), &udpfasttest.Fallback{}, udpfast.Options{})
	dst := []netip.AddrPort{netip.AddrPortFrom(v4.b, sink)}
	payloads := make([][]byte, udpfast.DefaultBatch)
	for i := range payloads {
		payloads[i] = make([]byte, 172)
	}
	if _, err := snd.SendBatch(payloads, dst); err != nil { // warm up
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := snd.SendBatch(payloads, dst); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("SendBatch as a train allocates %v times, want 0", n)
	}
}
