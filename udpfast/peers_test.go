package udpfast_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
	"github.com/mediastack/mediastack/udpfast/udpfasttest"
)

// One port alternating between two peers (an ICE mux, an SFU, a
// reflector answering two sources) stays on the fast path after each
// peer's first datagram (issue 12: it used to go 0 fast, all dst-changed).
func TestAlternatingPeers(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			rxR := &receiver{t: t, ep: f.lan.Hosts[2].BindUDP(t, sink)}
			peers := []netip.AddrPort{f.peer(), netip.AddrPortFrom(fam.gateway, sink)}
			for i := 0; i < 100; i++ {
				p := frames.Seq(make([]byte, 172), f.seq)
				f.seq++
				if err := f.snd.Send(p, peers[i%2]); err != nil {
					t.Fatal(err)
				}
				f.lan.Run(10 * time.Millisecond)
				f.rx.poll()
				rxR.poll()
			}
			st := f.snd.Stats()
			t.Logf("%s: 100 datagrams alternating between 2 peers: %v", fam.name, st)
			f.expect(98, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 2})
			if got := len(f.rx.seqs()) + len(rxR.seqs()); got != 100 {
				t.Fatalf("peers received %d datagrams, want 100", got)
			}
		})
	}
}

// roundRobin is a sender on a sink link whose table knows peers static
// neighbours (so every one is usable at once), and their addresses.
func roundRobin(tb testing.TB, peers int, opts policyarp.Options) (*udpfast.Sender, []netip.AddrPort, *sinkStack) {
	tb.Helper()
	s := newSinkStack(tb, nil)
	if opts.MaxDestinations != 0 { // a table of its own
		opts.Stack, opts.NIC, opts.BasePort, opts.Ports = s.st.Netstack(), s.st.NICID(0), base, 100
		table, err := policyarp.New(opts)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(table.Close)
		s.table = table
	}
	dsts := make([]netip.AddrPort, peers)
	for i := range dsts {
		a := frames.V4(byte(10 + i))
		if err := s.table.SetStatic(stack.AddrFrom(a), frames.MAC(byte(10+i))); err != nil {
			tb.Fatal(err)
		}
		dsts[i] = netip.AddrPortFrom(a, sink+uint16(i))
	}
	snd := s.sender(tb, netip.AddrPortFrom(v4.a, rtp), &udpfasttest.Fallback{}, udpfast.Options{})
	return snd, dsts, s
}

var peerCounts = []int{1, 2, 8, 64}

// A port sending round-robin to 1, 2, 8 and 64 peers sends every datagram
// fast (static neighbours: from the first) and allocates nothing; each
// frame goes to its peer's MAC and port.
func TestRoundRobinAllocatesNothing(t *testing.T) {
	for _, peers := range peerCounts {
		t.Run(fmt.Sprintf("peers=%d", peers), func(t *testing.T) {
			snd, dsts, s := roundRobin(t, peers, policyarp.Options{})
			payload := make([]byte, 172)
			for _, d := range dsts { // the per-destination templates
				if err := snd.Send(payload, d); err != nil {
					t.Fatal(err)
				}
			}
			i := 0
			if n := testing.AllocsPerRun(1000, func() {
				if err := snd.Send(payload, dsts[i%peers]); err != nil {
					panic(err)
				}
				i++
			}); n != 0 {
				t.Errorf("%v allocations per Send", n)
			}
			if st := snd.Stats(); st.FallbackTotal() != 0 {
				t.Fatalf("fallbacks %v", st.Fallbacks)
			}
			s.sink.Record(true)
			for j := 0; j < 2*peers; j++ {
				if err := snd.Send(payload, dsts[j%peers]); err != nil {
					t.Fatal(err)
				}
			}
			for j, fr := range s.sink.Frames() {
				u, ok := frames.ParseUDP(fr)
				want := dsts[j%peers]
				if !ok || u.Dst != want || u.DstMAC != frames.MAC(byte(10+j%peers)) {
					t.Fatalf("frame %d: %+v; want to %v at %s", j, u, want, frames.MAC(byte(10+j%peers)))
				}
			}
			if ev := s.table.Stats().Evictions; ev != 0 {
				t.Fatalf("%d evictions", ev)
			}
		})
	}
}

// More peers than the port's set holds: each new one evicts the least
// recently used, counted, and its first datagram goes through netstack as
// dst-changed; the peers that stay in the set stay fast.
func TestMorePeersThanTheSetHolds(t *testing.T) {
	snd, dsts, s := roundRobin(t, 6, policyarp.Options{MaxDestinations: 4})
	payload := make([]byte, 172)
	for _, d := range dsts[:4] {
		if err := snd.Send(payload, d); err != nil {
			t.Fatal(err)
		}
	}
	if st := snd.Stats(); st.Fast != 4 || st.FallbackTotal() != 0 {
		t.Fatalf("first four peers: %v", st)
	}
	for _, d := range dsts[4:] { // the set is full: static entries, evicted LRU, but usable at once
		if err := snd.Send(payload, d); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.table.Stats(); st.Evictions != 2 {
		t.Fatalf("table %+v: want 2 evictions", st)
	}
	if st := snd.Stats(); st.Fast != 6 || st.FallbackTotal() != 0 {
		t.Fatalf("after six peers: %v", st)
	}
}

// BenchmarkSendRoundRobin: one port sending 172-byte IPv4 datagrams to N
// peers in turn, each a static neighbour, on the sink link of
// BenchmarkSend. ns/op is per datagram; compare peers=N with peers=1.
func BenchmarkSendRoundRobin(b *testing.B) {
	for _, peers := range peerCounts {
		b.Run(fmt.Sprintf("peers=%d", peers), func(b *testing.B) {
			snd, dsts, _ := roundRobin(b, peers, policyarp.Options{})
			payload := make([]byte, 172)
			for _, d := range dsts {
				if err := snd.Send(payload, d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := snd.Send(payload, dsts[i%peers]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
			if st := snd.Stats(); st.FallbackTotal() != 0 {
				b.Fatalf("fallbacks %v", st.Fallbacks)
			}
		})
	}
}

// A router's "fragmentation needed" / "packet too big" about a fast
// destination lowers that destination's path MTU: larger datagrams go
// through netstack (too-big) instead of being fast-sent to a router that
// drops them, smaller ones and other destinations stay fast, and after
// policyarp.DefaultPathMTUExpiry the link MTU is tried again.
func TestPathMTUFromICMP(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			far := netip.AddrPortFrom(fam.remote, sink)
			big := fam.maxFastPayload // fits the link MTU
			sendSized := func(n int, dst netip.AddrPort) {
				t.Helper()
				if err := f.snd.Send(frames.Seq(make([]byte, n), f.seq), dst); err != nil {
					t.Fatal(err)
				}
				f.seq++
				f.lan.Run(10 * time.Millisecond)
			}
			sendSized(big, far) // resolves the gateway
			sendSized(big, far) // fast
			sendSized(100, f.peer())
			sendSized(100, f.peer())
			f.expect(2, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 2})
			var quoted []byte
			r := f.lan.Hosts[2]
			for _, fr := range r.Frames() {
				if u, ok := frames.ParseUDP(fr); ok && u.Dst == far {
					quoted = fr[14:]
				}
			}
			if quoted == nil {
				t.Fatal("the gateway saw no datagram to quote")
			}
			report := func(mtu uint32, q []byte) {
				t.Helper()
				if len(q) > 548 {
					q = q[:548]
				}
				msg := frames.TooBig{Router: fam.gateway, Dst: fam.a, SrcMAC: macR, DstMAC: macA, Quoted: q, MTU: mtu}
				if _, err := r.Link.WriteFrames([][]byte{msg.Build()}); err != nil {
					t.Fatal(err)
				}
				f.lan.Run(time.Millisecond)
			}
			minMTU := uint32(policyarp.MinPathMTUv4)
			if fam.name == "v6" {
				minMTU = policyarp.MinPathMTUv6
			}
			report(minMTU-1, quoted) // below the protocol's minimum: ignored
			farT := stack.AddrFrom(fam.remote)
			if e := f.table.Slot(rtp).Peek(farT); e.PathMTU != 0 {
				t.Fatalf("an MTU below %d was taken: %v", minMTU, e)
			}
			report(1400, quoted)
			if e := f.table.Slot(rtp).Peek(farT); e.PathMTU != 1400 || !e.Usable() {
				t.Fatalf("after the report: %v, want path MTU 1400", e)
			}
			if st := f.table.Stats(); st.PathMTUUpdates != 1 || st.PathMTUIgnored != 1 {
				t.Fatalf("table %+v", st)
			}
			ipLen := 28
			if fam.name == "v6" {
				ipLen = 48
			}
			r.Frames()
			sendSized(big, far) // too big for the path: fragmented at the path MTU
			var pieces int
			for _, fr := range r.Frames() {
				pkt := fr[14:]
				var dst tcpip.Address
				if fam.name == "v6" {
					dst = header.IPv6(pkt).DestinationAddress()
				} else {
					dst = header.IPv4(pkt).DestinationAddress()
				}
				if dst != farT {
					continue
				}
				pieces++
				if len(pkt) > 1400 {
					t.Errorf("a %d-byte IP packet to %v was sent after the path MTU fell to 1400", len(pkt), fam.remote)
				}
			}
			if pieces < 2 {
				t.Errorf("%d packets went to %v for a %d-byte datagram; want fragments of at most 1400 bytes", pieces, fam.remote, big)
			}
			sendSized(1400-ipLen, far) // fits: fast
			sendSized(big, f.peer())   // another destination: the link MTU holds
			f.expect(4, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 2, udpfast.ReasonTooBig: 1})

			f.lan.Run(policyarp.DefaultPathMTUExpiry / 2)
			sendSized(100, far) // keeps the entry in use
			f.lan.Run(policyarp.DefaultPathMTUExpiry/2 + 2*time.Second)
			if e := f.table.Slot(rtp).Peek(farT); e.PathMTU != 0 {
				t.Fatalf("path MTU did not expire: %v", e)
			}
			if st := f.table.Stats(); st.PathMTUExpired != 1 {
				t.Fatalf("table %+v", st)
			}
			sendSized(big, far)
			sendSized(big, far)
			st := f.snd.Stats()
			if st.Fallback(udpfast.ReasonTooBig) != 1 || st.Fast < 6 {
				t.Fatalf("after expiry: %v; want large datagrams fast again", st)
			}
		})
	}
}
