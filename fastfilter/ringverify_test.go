package fastfilter_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
)

// TestRingVerifiesWhileCopying: a Ring registered on a port verifies the UDP
// checksum in the pass that copies the payload in. Datagrams that fail,
// whether they fit a slot (verified during the copy, the slot skipped by
// readers) or not (verified before a slot is taken), never reach a read;
// the good ones around them arrive in order through Read and ReadBatch, and
// the filter and the ring count each bad one once.
func TestRingVerifiesWhileCopying(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			r := newReceiver(t)
			f, err := fastfilter.New(fastfilter.Options{Stack: r.st.Netstack(), NIC: r.st.NICID(0)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(f.Close)
			const slot = 256
			ring := newRing(t, fastfilter.RingOptions{Packets: 16, SlotSize: slot})
			if _, err := f.RegisterRing(rtpPort, rtpPort+1, ring); err != nil {
				t.Fatal(err)
			}
			r.ep.SetFrameHook(f.Hook)

			frame := func(payload []byte, corrupt bool) []byte {
				u := v4Frame(payload)
				if v6 {
					u = v6Frame(payload)
				}
				b := u.Build()
				if corrupt {
					b[len(b)-1] ^= 0x40 // the last payload byte: only the checksum tells
				}
				return b
			}
			payloads := [][]byte{
				bytes.Repeat([]byte{1}, 172),  // good
				bytes.Repeat([]byte{2}, 172),  // bad, fits a slot
				bytes.Repeat([]byte{3}, 1200), // good, larger than a slot
				bytes.Repeat([]byte{4}, 1200), // bad, larger than a slot
				bytes.Repeat([]byte{5}, 200),  // good
				bytes.Repeat([]byte{6}, 64),   // bad, fits a slot
				bytes.Repeat([]byte{7}, 65),   // good
			}
			var want [][]byte
			for i, p := range payloads {
				bad := i%2 == 1 && i != 6
				r.ep.DeliverFrame(frame(p, bad))
				if !bad {
					want = append(want, p)
				}
			}

			buf := make([]byte, 2048)
			n, _, err := ring.Read(buf, past)
			if err != nil {
				t.Fatal(err)
			}
			got := [][]byte{bytes.Clone(buf[:n])}
			bufs := make([][]byte, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			sizes := make([]int, len(bufs))
			k, err := ring.ReadBatch(bufs, sizes, nil, past)
			if err != nil {
				t.Fatal(err)
			}
			for i := range k {
				got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("payloads read (-want +got):\n%s", diff)
			}
			if _, _, err := ring.Read(buf, past); err == nil {
				t.Error("a fifth read returned a datagram; want the ring empty")
			}

			if diff := cmp.Diff(fastfilter.RingStats{Enqueued: 4, Read: 4, DroppedBadChecksum: 2}, ring.Stats()); diff != "" {
				t.Errorf("ring stats (-want +got):\n%s", diff)
			}
			c := f.Counters()
			if c.FastDelivered != 4 || c.Dropped.BadChecksum != 3 {
				t.Errorf("filter counters: FastDelivered %d, Dropped.BadChecksum %d; want 4 and 3", c.FastDelivered, c.Dropped.BadChecksum)
			}
		})
	}
}

// TestRingSkipsOnlyBadDatagrams: a ring that holds nothing but datagrams
// that failed their checksum reads as empty, and its room comes back.
func TestRingSkipsOnlyBadDatagrams(t *testing.T) {
	r := newReceiver(t)
	f, err := fastfilter.New(fastfilter.Options{Stack: r.st.Netstack(), NIC: r.st.NICID(0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ring := newRing(t, fastfilter.RingOptions{Packets: 4})
	if _, err := f.RegisterRing(rtpPort, rtpPort+1, ring); err != nil {
		t.Fatal(err)
	}
	r.ep.SetFrameHook(f.Hook)
	bad := v4Frame(testPayload).Build()
	bad[len(bad)-1] ^= 1
	for range 3 {
		r.ep.DeliverFrame(bad)
	}
	buf := make([]byte, 64)
	sizes := []int{0}
	if _, err := ring.ReadBatch([][]byte{buf}, sizes, nil, past); err == nil {
		t.Fatal("ReadBatch over bad datagrams only returned one")
	}
	if n := ring.Len(); n != 0 {
		t.Fatalf("Len() = %d after skipping the bad datagrams, want 0", n)
	}
	for range 4 { // the whole ring is free again
		r.ep.DeliverFrame(v4Frame(testPayload).Build())
	}
	if got := ring.Stats(); got.Enqueued != 4 || got.DroppedFull != 0 || got.DroppedBadChecksum != 3 {
		t.Fatalf("stats after refilling: %+v; want 4 enqueued, none dropped full, 3 bad", got)
	}
	n, from, err := ring.Read(buf, past)
	if err != nil || !bytes.Equal(buf[:n], testPayload) || from != netip.AddrPortFrom(frames.PeerV4, peerPort) {
		t.Fatalf("Read = %q from %v, %v; want %q from %v", buf[:n], from, err, testPayload, netip.AddrPortFrom(frames.PeerV4, peerPort))
	}
}
