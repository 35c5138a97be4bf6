package fastfilter_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
)

func newRing(t testing.TB, o fastfilter.RingOptions) *fastfilter.Ring {
	t.Helper()
	r, err := fastfilter.NewRing(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func datagram(payload []byte, port uint16) *fastfilter.Datagram {
	return &fastfilter.Datagram{
		Payload: payload,
		Src:     netip.AddrPortFrom(frames.PeerV4, port),
		Dst:     netip.AddrPortFrom(frames.StackV4, rtpPort),
		Version: 4,
	}
}

var past = time.Unix(1, 0) // a deadline that has passed: poll

func TestRingKeepsPacketsInOrder(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{Packets: 8, Timestamps: true})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := []fastfilter.Datagram{
		{Payload: []byte("one"), Src: netip.AddrPortFrom(frames.PeerV4, 1), Dst: netip.AddrPortFrom(frames.StackV4, rtpPort), Version: 4},
		{Payload: []byte(""), Src: netip.AddrPortFrom(frames.PeerV6, 2), Dst: netip.AddrPortFrom(frames.StackV6, rtpPort+1), Version: 6, ViaNetstack: true},
		{Payload: []byte("three"), Src: netip.AddrPortFrom(frames.PeerV4, 3), Dst: netip.AddrPortFrom(frames.StackV4, rtpPort), Version: 4},
	}
	for i := range in {
		fastfilter.SetReceivedAt(&in[i], now.Add(time.Duration(i)))
		r.Receive(&in[i])
	}
	buf := make([]byte, 100)
	for _, d := range in {
		n, info, err := r.ReadPacket(buf, past)
		if err != nil {
			t.Fatal(err)
		}
		want := fastfilter.PacketInfo{Src: d.Src, Dst: d.Dst, Version: d.Version, ReceivedAt: d.ReceivedAt(), ViaNetstack: d.ViaNetstack, Size: len(d.Payload)}
		if diff := cmp.Diff(want, info, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
			t.Errorf("info (-want +got):\n%s", diff)
		}
		if string(buf[:n]) != string(d.Payload) {
			t.Errorf("payload %q, want %q", buf[:n], d.Payload)
		}
	}
	if _, _, err := r.Read(buf, past); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read of an empty ring with a past deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if diff := cmp.Diff(fastfilter.RingStats{Enqueued: 3, Read: 3}, r.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestRingTruncatesLikeASocket(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{})
	r.Receive(datagram([]byte("0123456789"), 1))
	buf := make([]byte, 4)
	n, info, err := r.ReadPacket(buf, past)
	if err != nil || n != 4 || info.Size != 10 || string(buf) != "0123" {
		t.Errorf("ReadPacket = %d, %+v, %v, buf %q; want 4 bytes of 10", n, info, err, buf)
	}
	if r.Len() != 0 {
		t.Errorf("Len %d after reading the only datagram", r.Len())
	}
}

func TestRingFullDropsNewAndCounts(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{Packets: 2})
	for i := range 4 {
		r.Receive(datagram([]byte(fmt.Sprintf("datagram%d", i+10)), uint16(i)))
	}
	if diff := cmp.Diff(fastfilter.RingStats{Enqueued: 2, DroppedFull: 2, Len: 2}, r.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	buf := make([]byte, 100)
	for i := range 2 {
		n, _, err := r.Read(buf, past)
		if want := fmt.Sprintf("datagram%d", i+10); err != nil || string(buf[:n]) != want {
			t.Errorf("read %q, %v; want the oldest, %q", buf[:n], err, want)
		}
	}
}

func TestRingHoldsDatagramsLargerThanSlots(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{Packets: 4, SlotSize: 8})
	in := []string{"short", "longer than eight bytes", "", strings.Repeat("x", 70000)}
	for _, p := range in {
		r.Receive(datagram([]byte(p), 1))
	}
	buf := make([]byte, 1<<17)
	for _, want := range in {
		n, info, err := r.ReadPacket(buf, past)
		if err != nil || string(buf[:n]) != want || info.Size != len(want) {
			t.Errorf("read %d bytes (size %d), %v; want %d bytes", n, info.Size, err, len(want))
		}
	}
}

// TestRingWrapsAround pushes random sizes through a small arena and checks
// every datagram comes out intact and in order.
func TestRingWrapsAround(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{Packets: 8, SlotSize: 64})
	rng := rand.New(rand.NewPCG(1, 2))
	var queue [][]byte
	buf := make([]byte, 400)
	seq := 0
	for step := 0; step < 20000; step++ {
		if rng.IntN(2) == 0 {
			p := make([]byte, rng.IntN(120))
			for i := range p {
				p[i] = byte(seq + i)
			}
			seq++
			before := r.Stats()
			r.Receive(datagram(p, 1))
			if r.Stats().Enqueued > before.Enqueued {
				queue = append(queue, p)
			}
			continue
		}
		n, _, err := r.Read(buf, past)
		if len(queue) == 0 {
			if err == nil {
				t.Fatalf("step %d: read %d bytes from a ring that should be empty", step, n)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v with %d held", step, err, len(queue))
		}
		if !bytes.Equal(buf[:n], queue[0]) {
			t.Fatalf("step %d: read %x, want %x", step, buf[:n], queue[0])
		}
		queue = queue[1:]
	}
	st := r.Stats()
	if st.DroppedFull == 0 || st.Enqueued < 1000 {
		t.Errorf("stats %+v: the test should fill the ring often and pass many datagrams", st)
	}
}

func TestRingReadBatch(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{})
	for i := range 5 {
		r.Receive(datagram([]byte{byte(i), byte(i)}, uint16(100+i)))
	}
	bufs := make([][]byte, 3)
	for i := range bufs {
		bufs[i] = make([]byte, 10)
	}
	sizes := make([]int, 3)
	addrs := make([]netip.AddrPort, 3)
	for _, want := range []int{3, 2} {
		n, err := r.ReadBatch(bufs, sizes, addrs, past)
		if err != nil || n != want {
			t.Fatalf("ReadBatch = %d, %v; want %d", n, err, want)
		}
		for i := range n {
			port := addrs[i].Port()
			if sizes[i] != 2 || bufs[i][0] != byte(port-100) {
				t.Errorf("datagram %d: %x from %v", i, bufs[i][:sizes[i]], addrs[i])
			}
		}
	}
	if _, err := r.ReadBatch(bufs, sizes, nil, past); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadBatch on empty ring: %v, want os.ErrDeadlineExceeded", err)
	}
	if _, err := r.ReadBatch(bufs, sizes[:1], nil, past); err == nil {
		t.Error("ReadBatch with sizes shorter than bufs: no error")
	}
}

func TestRingBlockingReadWakesAndCloses(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{})
	got := make(chan string)
	go func() {
		buf := make([]byte, 10)
		for {
			n, _, err := r.Read(buf, time.Time{})
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(buf[:n])
		}
	}()
	// next is what the reader returns next, within a hang guard.
	next := func(event string) string {
		select {
		case s := <-got:
			return s
		case <-time.After(time.Minute):
			t.Fatalf("the blocked reader did not return within a minute of %s", event)
			return ""
		}
	}
	r.Receive(datagram([]byte("hello"), 1))
	if s := next("a datagram"); s != "hello" {
		t.Fatalf("blocked reader got %q", s)
	}
	r.Close()
	if s := next("Close"); s != net.ErrClosed.Error() {
		t.Fatalf("after Close the reader got %q, want %v", s, net.ErrClosed)
	}
	r.Receive(datagram([]byte("late"), 1))
	if st := r.Stats(); st.DroppedClosed != 1 {
		t.Errorf("stats %+v, want the late datagram counted as DroppedClosed", st)
	}
}

func TestRingDeadline(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{})
	_, _, err := r.Read(make([]byte, 10), time.Now().Add(5*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read on an empty ring: %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%v is not a net.Error timeout", err)
	}
	r.Receive(datagram([]byte("x"), 1))
	r.Close()
	if n, _, err := r.Read(make([]byte, 10), past); err != nil || n != 1 {
		t.Errorf("a closed ring must still hand out what it holds: %d, %v", n, err)
	}
}

// TestRingConcurrent runs producers and readers, one datagram or a batch at
// a time, at once (run with -race): every datagram is read exactly once, in
// its producer's order, or counted as dropped.
func TestRingConcurrent(t *testing.T) {
	r := newRing(t, fastfilter.RingOptions{Packets: 64, SlotSize: 4})
	const producers, perProducer = 4, 5000
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, 8)
			for i := range perProducer {
				payload[0] = byte(p)
				binary.BigEndian.PutUint16(payload[1:], uint16(i))
				r.Receive(datagram(payload[:3+i%6], uint16(p))) // some beyond SlotSize
				if i%16 == 0 {
					runtime.Gosched() // let readers in: a full ring tests less
				}
			}
		}()
	}
	var (
		readers sync.WaitGroup
		mu      sync.Mutex
		seen    = make(map[[2]int]bool)
	)
	for reader, batch := range []int{1, 2, 8} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			bufs := make([][]byte, batch)
			for i := range bufs {
				bufs[i] = make([]byte, 16)
			}
			sizes := make([]int, batch)
			addrs := make([]netip.AddrPort, batch)
			last := make([]int, producers) // the producer's sequence number last read
			for i := range last {
				last[i] = -1
			}
			for {
				var n int
				var err error
				if reader == 0 {
					sizes[0], addrs[0], err = r.Read(bufs[0], time.Time{})
					n = 1
				} else {
					n, err = r.ReadBatch(bufs, sizes, addrs, time.Time{})
				}
				if err != nil {
					return
				}
				for i := range n {
					p, seq := int(bufs[i][0]), int(binary.BigEndian.Uint16(bufs[i][1:]))
					if p != int(addrs[i].Port()) || sizes[i] != 3+seq%6 {
						t.Errorf("payload %x from producer %d", bufs[i][:sizes[i]], addrs[i].Port())
						continue
					}
					if seq <= last[p] {
						t.Errorf("reader %d: datagram %d of producer %d after %d", reader, seq, p, last[p])
					}
					last[p] = seq
					mu.Lock()
					if seen[[2]int{p, seq}] {
						t.Errorf("datagram %d of producer %d read twice", seq, p)
					}
					seen[[2]int{p, seq}] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	r.Close() // readers drain what is held, then get net.ErrClosed
	readers.Wait()
	st := r.Stats()
	if st.Enqueued+st.DroppedFull != producers*perProducer || st.Read != st.Enqueued || uint64(len(seen)) != st.Read {
		t.Errorf("stats %+v, %d distinct datagrams read: want enqueued+dropped = %d and read = enqueued = distinct", st, len(seen), producers*perProducer)
	}
	t.Logf("stats %+v", st)
}
