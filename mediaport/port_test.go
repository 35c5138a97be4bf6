package mediaport_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/udpfast"
)

// sendSummary is what the tests check of a port's send counters.
type sendSummary struct {
	Fast      uint64
	Fallbacks map[string]uint64
}

func summarize(st udpfast.Stats) sendSummary {
	s := sendSummary{Fast: st.Fast, Fallbacks: map[string]uint64{}}
	for r, n := range st.Fallbacks {
		if n != 0 {
			s.Fallbacks[udpfast.Reason(r).String()] = n
		}
	}
	return s
}

// TestPortExchangeOverTheFastPaths: A sends ten datagrams to B and B
// answers each to its source, over IPv4 and IPv6. Everything arrives, in
// order, from the right address and port; each side's first datagram goes
// through netstack (no ARP entry yet) and the rest fast, and every
// datagram is received fast.
func TestPortExchangeOverTheFastPaths(t *testing.T) {
	for _, fam := range []struct {
		name   string
		aa, ba netip.Addr
	}{{"v4", addrA4, addrB4}, {"v6", addrA6, addrB6}} {
		t.Run(fam.name, func(t *testing.T) {
			l := newSimLAN(t, sim.Impairments{Delay: time.Millisecond}, mediaport.Options{})
			pa, pb := simlan.Open(t, l.a.m, 20010), simlan.Open(t, l.b.m, 20020)
			var wantB, gotB, wantA, gotA []simlan.Datagram
			for i := range 10 {
				msg := fmt.Sprintf("rtp %d", i)
				if _, err := pa.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.ba, 20020))); err != nil {
					t.Fatal(err)
				}
				wantB = append(wantB, dg(msg, netip.AddrPortFrom(fam.aa, 20010)))
				l.Run(20 * time.Millisecond)
				for _, d := range simlan.Drain(t, pb) {
					gotB = append(gotB, d)
					if _, err := pb.WriteToUDPAddrPort([]byte("re "+d.Payload), netip.MustParseAddrPort(d.From)); err != nil {
						t.Fatal(err)
					}
					wantA = append(wantA, dg("re "+d.Payload, netip.AddrPortFrom(fam.ba, 20020)))
				}
				l.Run(20 * time.Millisecond)
				gotA = append(gotA, simlan.Drain(t, pa)...)
			}
			if diff := cmp.Diff(wantB, gotB); diff != "" {
				t.Errorf("B received (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantA, gotA); diff != "" {
				t.Errorf("A received (-want +got):\n%s", diff)
			}
			// A's first datagram finds no entry; B answers a peer whose MAC
			// netstack learnt from A's own ARP request (NDP solicitation),
			// so even B's first answer goes fast (issue 12).
			wants := map[string]sendSummary{
				"A": {Fast: 9, Fallbacks: map[string]uint64{"no-entry": 1}},
				"B": {Fast: 10, Fallbacks: map[string]uint64{}},
			}
			for name, p := range map[string]*mediaport.Port{"A": pa, "B": pb} {
				st := p.Stats()
				if diff := cmp.Diff(wants[name], summarize(st.Send)); diff != "" {
					t.Errorf("%s's sends (-want +got):\n%s", name, diff)
				}
				if st.Receive.FastDelivered != 10 || st.Receive.NetstackDelivered != 0 || st.Buffered != 10 || st.Read != 10 {
					t.Errorf("%s's receive counters: %+v", name, st)
				}
			}
		})
	}
}

// bySource orders datagrams by source, keeping each source's order: the
// first IPv6 datagram waits in netstack for neighbour discovery while IPv4
// ones go on, so only the order per family is kept.
func bySource(d []simlan.Datagram) []simlan.Datagram {
	slices.SortStableFunc(d, func(a, b simlan.Datagram) int { return strings.Compare(a.From, b.From) })
	return d
}

// TestPortIsDualStack: one port receives over IPv4 and IPv6 and answers
// each peer from the address it was reached on.
func TestPortIsDualStack(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	pa, pb := simlan.Open(t, l.a.m, 20000), simlan.Open(t, l.b.m, 20000)
	if got, want := pa.LocalAddr().String(), "198.51.100.1:20000"; got != want {
		t.Errorf("LocalAddr %s, want %s", got, want)
	}
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(addrB4, 20000), netip.AddrPortFrom(addrB6, 20000), netip.MustParseAddrPort("[::ffff:198.51.100.2]:20000")} {
		if _, err := pa.WriteToUDPAddrPort([]byte("to "+dst.String()), dst); err != nil {
			t.Fatal(err)
		}
	}
	l.Run(10 * time.Millisecond)
	got := bySource(simlan.Drain(t, pb))
	want := bySource([]simlan.Datagram{
		dg("to 198.51.100.2:20000", netip.AddrPortFrom(addrA4, 20000)),
		dg("to [2001:db8::2]:20000", netip.AddrPortFrom(addrA6, 20000)),
		dg("to [::ffff:198.51.100.2]:20000", netip.AddrPortFrom(addrA4, 20000)),
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("B received (-want +got):\n%s", diff)
	}
}

func TestReadDeadlines(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	pa, pb := simlan.Open(t, l.a.m, 20000), simlan.Open(t, l.b.m, 20000)
	buf := make([]byte, 100)

	t.Run("past", func(t *testing.T) {
		pb.SetReadDeadline(time.Now().Add(-time.Second))
		defer pb.SetReadDeadline(time.Time{})
		_, _, err := pb.ReadFrom(buf)
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read past the deadline: %v, want a timeout", err)
		}
	})

	// returned is what a blocked read returned after event, within a hang
	// guard (not a timing assertion).
	returned := func(done <-chan error, event string) error {
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatalf("a blocked read still blocked a minute after %s", event)
			return nil
		}
	}

	// blockedRead starts a read and waits until it is blocked in the ring.
	blockedRead := func(p *mediaport.Port) <-chan error {
		done := make(chan error, 1)
		go func() {
			n, _, err := p.ReadFrom(buf)
			if err == nil && string(buf[:n]) != "hello" {
				err = fmt.Errorf("read %q", buf[:n])
			}
			done <- err
		}()
		return done
	}

	t.Run("set while blocked", func(t *testing.T) {
		done := blockedRead(pb)
		time.Sleep(10 * time.Millisecond) // let it block; the test holds either way
		pb.SetReadDeadline(time.Now())
		if err := returned(done, "SetReadDeadline(now)"); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("blocked read after SetReadDeadline(now): %v", err)
		}
		pb.SetReadDeadline(time.Time{})
	})

	t.Run("cleared while blocked", func(t *testing.T) {
		pb.SetReadDeadline(time.Now().Add(time.Hour))
		done := blockedRead(pb)
		time.Sleep(10 * time.Millisecond)
		pb.SetReadDeadline(time.Time{}) // wakes the reader, which goes back to waiting
		pa.WriteToUDPAddrPort([]byte("hello"), netip.AddrPortFrom(addrB4, 20000))
		l.Run(10 * time.Millisecond)
		if err := returned(done, "a datagram"); err != nil {
			t.Errorf("read: %v", err)
		}
	})

	t.Run("close while blocked", func(t *testing.T) {
		p := simlan.Open(t, l.b.m, 20001)
		done := blockedRead(p)
		time.Sleep(10 * time.Millisecond)
		p.Close()
		if err := returned(done, "Close"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked read after Close: %v", err)
		}
	})

	// Wake-ups are not datagrams.
	if st := pb.Stats(); st.Buffered != 1 || st.Read != 1 {
		t.Errorf("B's buffer counters %+v: want the one datagram sent", st)
	}
}

func TestWriteDeadline(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	pa := simlan.Open(t, l.a.m, 20000)
	dst := netip.AddrPortFrom(addrB4, 20000)
	pa.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := pa.WriteToUDPAddrPort([]byte("late"), dst); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write past the deadline: %v", err)
	}
	if _, err := pa.WriteBatch([][]byte{[]byte("late")}, []netip.AddrPort{dst}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("batch write past the deadline: %v", err)
	}
	pa.SetDeadline(time.Time{})
	if _, err := pa.WriteToUDPAddrPort([]byte("on time"), dst); err != nil {
		t.Errorf("write with no deadline: %v", err)
	}
}

// TestBatches: WriteBatch to one destination and to a destination per
// datagram, mixing IPv4 and IPv6; ReadBatch gets every datagram, in order.
func TestBatches(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	pa, pb := simlan.Open(t, l.a.m, 20000), simlan.Open(t, l.b.m, 20000)
	b4, b6 := netip.AddrPortFrom(addrB4, 20000), netip.AddrPortFrom(addrB6, 20000)

	var bufs [][]byte
	var dsts []netip.AddrPort
	var want []simlan.Datagram
	for i := range 40 {
		bufs = append(bufs, fmt.Appendf(nil, "one %d", i))
		want = append(want, dg(fmt.Sprintf("one %d", i), netip.AddrPortFrom(addrA4, 20000)))
	}
	if n, err := pa.WriteBatch(bufs, []netip.AddrPort{b4}); n != 40 || err != nil {
		t.Fatalf("WriteBatch to one destination: %d, %v", n, err)
	}
	l.Run(10 * time.Millisecond)
	bufs = bufs[:0]
	for i := range 40 {
		dst, from := b4, addrA4
		if i%3 == 0 {
			dst, from = b6, addrA6
		}
		bufs = append(bufs, fmt.Appendf(nil, "mixed %d", i))
		dsts = append(dsts, dst)
		want = append(want, dg(fmt.Sprintf("mixed %d", i), netip.AddrPortFrom(from, 20000)))
	}
	if n, err := pa.WriteBatch(bufs, dsts); n != 40 || err != nil {
		t.Fatalf("WriteBatch to a destination each: %d, %v", n, err)
	}
	l.Run(10 * time.Millisecond)

	rbufs := make([][]byte, 16)
	for i := range rbufs {
		rbufs[i] = make([]byte, 1500)
	}
	sizes, addrs := make([]int, 16), make([]netip.AddrPort, 16)
	pb.SetReadDeadline(simlan.Past)
	var got []simlan.Datagram
	for {
		n, err := pb.ReadBatch(rbufs, sizes, addrs)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			got = append(got, dg(string(rbufs[i][:sizes[i]]), addrs[i]))
		}
	}
	if diff := cmp.Diff(bySource(want), bySource(got)); diff != "" {
		t.Errorf("B received (-want +got):\n%s", diff)
	}
	if _, err := pa.WriteBatch(bufs, dsts[:2]); !errors.Is(err, udpfast.ErrBatchShape) {
		t.Errorf("WriteBatch with 2 destinations for 40 datagrams: %v", err)
	}
	if _, err := pb.ReadBatch(rbufs, sizes[:1], addrs); err == nil {
		t.Errorf("ReadBatch with sizes shorter than bufs: no error")
	}
}

// TestConcurrentReadersSeeNoWakeups: readers blocked in ReadFrom and
// ReadBatch while deadlines are set again and again receive exactly the
// datagrams sent, never an empty one.
func TestConcurrentReadersSeeNoWakeups(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	pa, pb := simlan.Open(t, l.a.m, 20000), simlan.Open(t, l.b.m, 20000)
	const n = 300
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	record := func(p string) {
		mu.Lock()
		seen[p]++
		mu.Unlock()
	}
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r%2 == 0 {
				buf := make([]byte, 100)
				for {
					k, _, err := pb.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					record(string(buf[:k]))
				}
			}
			bufs := [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 100)}
			sizes, addrs := make([]int, 3), make([]netip.AddrPort, 3)
			for {
				k, err := pb.ReadBatch(bufs, sizes, addrs)
				if err != nil {
					return
				}
				for i := range k {
					record(string(bufs[i][:sizes[i]]))
				}
			}
		}()
	}
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				pb.SetReadDeadline(time.Now().Add(time.Hour))
				pb.SetReadDeadline(time.Time{})
			}
		}
	}()
	caughtUp := func(sent uint64) {
		for range 2000 {
			if pb.Stats().Read == sent {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range n {
		pa.WriteToUDPAddrPort(fmt.Appendf(nil, "d%d", i), netip.AddrPortFrom(addrB4, 20000))
		l.Run(time.Millisecond)
		if i%50 == 49 { // keep within the ring: this tests wake-ups, not overflow
			caughtUp(uint64(i + 1))
		}
	}
	close(stop)
	st := pb.Stats()
	pb.Close()
	wg.Wait()
	t.Logf("B's port: %+v", st)
	want := map[string]int{}
	for i := range n {
		want[fmt.Sprintf("d%d", i)] = 1
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("datagrams read (-want +got):\n%s", diff)
	}
}

// TestOpenFuncReflects: a port opened with a function answers from the
// receive goroutine itself; it has nothing to read.
func TestOpenFuncReflects(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	pa := simlan.Open(t, l.a.m, 20000)
	reflector, err := l.b.m.OpenFunc(20002, func(p *mediaport.Port, d *fastfilter.Datagram) {
		p.WriteToUDPAddrPort(d.Payload, d.Src)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reflector.Close()
	for i := range 5 {
		pa.WriteToUDPAddrPort(fmt.Appendf(nil, "ping %d", i), netip.AddrPortFrom(addrB4, 20002))
		l.Run(10 * time.Millisecond)
	}
	got := simlan.Drain(t, pa)
	var want []simlan.Datagram
	for i := range 5 {
		want = append(want, dg(fmt.Sprintf("ping %d", i), netip.AddrPortFrom(addrB4, 20002)))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("A received (-want +got):\n%s", diff)
	}
	if _, _, err := reflector.ReadFrom(make([]byte, 10)); !errors.Is(err, mediaport.ErrNoBuffer) {
		t.Errorf("ReadFrom on a function port: %v", err)
	}
	// netstack learnt the sender's MAC from its ARP request: every answer,
	// the first too, goes fast.
	if st := reflector.Stats(); st.Send.Fast != 5 || st.Receive.FastDelivered != 5 {
		t.Errorf("reflector stats %+v: want 5 received fast, 5 answers sent fast", st)
	}
}

// TestCloseReleasesThePort: a closed port's number opens again at once,
// and what arrived for the old one is not seen by the new one.
func TestCloseReleasesThePort(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	pa, pb := simlan.Open(t, l.a.m, 20000), simlan.Open(t, l.b.m, 20000)
	pa.WriteToUDPAddrPort([]byte("old"), netip.AddrPortFrom(addrB4, 20000))
	l.Run(10 * time.Millisecond)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := pb.SetReadDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetReadDeadline after Close: %v", err)
	}
	again := simlan.Open(t, l.b.m, 20000)
	pa.WriteToUDPAddrPort([]byte("new"), netip.AddrPortFrom(addrB4, 20000))
	l.Run(10 * time.Millisecond)
	if diff := cmp.Diff([]simlan.Datagram{dg("new", netip.AddrPortFrom(addrA4, 20000))}, simlan.Drain(t, again)); diff != "" {
		t.Errorf("reopened port received (-want +got):\n%s", diff)
	}
	// The manager's totals keep the closed port's counts.
	if st := l.b.m.Stats(); st.Receive.FastDelivered != 2 || st.OpenPorts != 1 {
		t.Errorf("B's manager stats %+v", st)
	}
}

// TestLostARPReplyFallsBack: with the first ARP exchange lost, datagrams go
// through netstack (which queues and retries) until the MAC is known, then
// fast; none is lost.
func TestFallbackUntilResolved(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{Delay: 30 * time.Millisecond}, mediaport.Options{})
	pa, pb := simlan.Open(t, l.a.m, 20000), simlan.Open(t, l.b.m, 20000)
	for i := range 10 {
		pa.WriteToUDPAddrPort(fmt.Appendf(nil, "%d", i), netip.AddrPortFrom(addrB4, 20000))
		l.Run(20 * time.Millisecond) // shorter than the ARP round trip
	}
	l.Run(100 * time.Millisecond)
	if got := len(simlan.Drain(t, pb)); got != 10 {
		t.Errorf("B received %d of 10", got)
	}
	st := summarize(pa.Stats().Send)
	if st.Fallbacks["no-entry"] != 1 || st.Fallbacks["unresolved"] == 0 || st.Fast+st.Fallbacks["unresolved"] != 9 {
		t.Errorf("A's sends %+v: want 1 no-entry, some unresolved while ARP is under way, then fast", st)
	}
}
