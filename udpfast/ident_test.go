package udpfast_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/mediastack/mediastack/udpfast"
	"github.com/mediastack/mediastack/udpfast/udpfasttest"
)

// sendPair sends from an RTP and an RTCP sender, both fragmentable and
// sharing ids, to one peer, single datagrams and batches (trains on a
// segmenting link), interleaved, and returns the IPv4 IDs on the wire.
func sendPair(t *testing.T, ids *udpfast.IDs, segment bool) []uint16 {
	t.Helper()
	s := newSinkStackSegmenting(t, nil, segment)
	dst := netip.AddrPortFrom(v4.b, sink)
	var senders []*udpfast.Sender
	for _, port := range []uint16{rtp, rtp + 1} {
		snd := s.sender(t, netip.AddrPortFrom(v4.a, port), &udpfasttest.Fallback{}, udpfast.Options{AllowFragmentation: true, IDs: ids})
		if err := snd.Send([]byte("first"), dst); err != nil { // makes the port's entry
			t.Fatal(err)
		}
		senders = append(senders, snd)
	}
	s.sink.Record(true)
	batch := make([][]byte, 8)
	for i := range batch {
		batch[i] = make([]byte, 160)
	}
	for range 50 {
		for _, snd := range senders {
			if err := snd.Send(make([]byte, 160), dst); err != nil {
				t.Fatal(err)
			}
			if n, err := snd.SendBatch(batch, []netip.AddrPort{dst}); n != len(batch) || err != nil {
				t.Fatalf("SendBatch = %d, %v", n, err)
			}
		}
	}
	var got []uint16
	for _, f := range s.sink.Frames() {
		got = append(got, decodeFrame(t, f).ID)
	}
	if want := 50 * 2 * (1 + len(batch)); len(got) != want {
		t.Fatalf("%d frames on the wire, want %d", len(got), want)
	}
	return got
}

// TestIDsPerDestination: two senders to one peer (an RTP/RTCP pair) that
// share an IDs never emit the same IPv4 ID (RFC 6864 section 4.3), trains
// included, and the IDs start at a seeded random point, not 1: the same
// seed gives the same IDs.
func TestIDsPerDestination(t *testing.T) {
	for _, segment := range []bool{false, true} {
		got := sendPair(t, udpfast.NewIDs(1), segment)
		seen := map[uint16]int{}
		for i, id := range got {
			if j, dup := seen[id]; dup {
				t.Fatalf("segment=%v: datagrams %d and %d have IPv4 ID %d", segment, j, i, id)
			}
			seen[id] = i
		}
		if got[0] == 1 || got[0] == 2 {
			t.Errorf("segment=%v: IDs start at %d: predictable", segment, got[0])
		}
		if again := sendPair(t, udpfast.NewIDs(1), segment); !slices.Equal(got, again) {
			t.Errorf("segment=%v: the same seed gave other IDs", segment)
		}
		if other := sendPair(t, udpfast.NewIDs(2), segment); other[0] == got[0] {
			t.Errorf("segment=%v: seeds 1 and 2 both start at ID %d", segment, got[0])
		}
	}
}
