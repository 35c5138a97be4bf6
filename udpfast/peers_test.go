package udpfast_test

import (
	"bytes"
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
// destination lowers that destination's path MTU: larger datagrams go fast
// as IP fragments of at most that MTU (Stats.Fragmented, as Linux sends
// with IP_PMTUDISC_WANT) instead of whole to a router that drops them,
// smaller ones and other destinations stay fast whole, and after
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
			// The fragmented datagram is fast, not a too-big fallback.
			f.expect(5, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 2})
			if st := f.snd.Stats(); st.Fragmented != 1 {
				t.Fatalf("%v; want 1 datagram fragmented", st)
			}

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
			if st.Fallback(udpfast.ReasonTooBig) != 0 || st.Fragmented != 1 || st.Fast < 8 {
				t.Fatalf("after expiry: %v; want large datagrams fast again", st)
			}
		})
	}
}

// Datagrams too big for a path MTU a router lowered leave in fragments of
// at most that MTU (DF clear, one non-zero ID per datagram, offsets in
// multiples of 8; IPv6 with a Fragment header), which a netstack host
// reassembles into the very datagrams sent, from just over the path MTU up
// to the largest UDP datagram.
func TestFragmentsReassemble(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			b := f.lan.Hosts[1]
			f.send(2, f.peer(), 10*time.Millisecond) // resolves B, then fast
			f.rx.seqs()
			var quoted []byte
			for _, fr := range b.Frames() {
				if u, ok := frames.ParseUDP(fr); ok && u.Dst == f.peer() {
					quoted = fr[14:]
				}
			}
			if quoted == nil {
				t.Fatal("B saw no datagram to quote")
			}
			// Not multiples of 8 past the headers: the fragments' data is
			// cut at the multiple of 8 below.
			pmtu, ipLen, maxPayload := 1006, 28, 65535-28
			if fam.name == "v6" {
				pmtu, ipLen, maxPayload = 1300, 48, 65535-8
			}
			msg := frames.TooBig{Router: fam.b, Dst: fam.a, SrcMAC: macB, DstMAC: macA, Quoted: quoted[:min(len(quoted), 548)], MTU: uint32(pmtu)}
			if _, err := b.Link.WriteFrames([][]byte{msg.Build()}); err != nil {
				t.Fatal(err)
			}
			f.lan.Run(time.Millisecond)
			if e := f.table.Slot(rtp).Peek(stack.AddrFrom(fam.b)); e.PathMTU != uint32(pmtu) {
				t.Fatalf("after the report: %v, want path MTU %d", e, pmtu)
			}
			f.rx.ep.SocketOptions().SetReceiveBufferSize(1<<20, true)
			before := f.snd.Stats()
			sizes := []int{pmtu - ipLen + 1, fam.maxFastPayload, 9000, maxPayload}
			ids := map[uint32]bool{}
			for i, n := range sizes {
				p := frames.Seq(make([]byte, n), f.seq)
				for j := 8; j < n; j++ {
					p[j] = byte(j*7 + i)
				}
				f.seq++
				if err := f.snd.Send(p, f.peer()); err != nil {
					t.Fatal(err)
				}
				f.lan.Run(10 * time.Millisecond)
				var got bytes.Buffer
				if _, err := f.rx.ep.Read(&got, tcpip.ReadOptions{}); err != nil {
					t.Fatalf("%d bytes: B read %v", n, err)
				}
				if !bytes.Equal(got.Bytes(), p) {
					t.Fatalf("%d bytes: B reassembled %d bytes, not the datagram sent", n, got.Len())
				}
				pieces, id := checkFragments(t, fam, b.Frames(), pmtu)
				if want := (n + 8 + (pmtu-ipLen+8)&^7 - 1) / ((pmtu - ipLen + 8) &^ 7); pieces != want {
					t.Errorf("%d bytes: %d fragments, want %d", n, pieces, want)
				}
				if ids[id] {
					t.Errorf("%d bytes: ID %#x used before", n, id)
				}
				ids[id] = true
			}
			st := f.snd.Stats()
			if d := st.Fragmented - before.Fragmented; d != uint64(len(sizes)) || st.FallbackTotal() != before.FallbackTotal() {
				t.Fatalf("%v; want %d more fragmented, no more fallbacks", st, len(sizes))
			}
			if n := b.Stack.Netstack().Stats().UDP.ChecksumErrors.Value(); n != 0 {
				t.Fatalf("B counted %d UDP checksum errors", n)
			}
		})
	}
}

// checkFragments checks the IP packets to fam.b in frs: fragments of one
// datagram of at most mtu bytes, in order, with one non-zero ID; it
// returns how many and the ID.
func checkFragments(t *testing.T, fam family, frs [][]byte, mtu int) (pieces int, id uint32) {
	t.Helper()
	next := 0 // the offset the next fragment must have
	last := false
	for _, fr := range frs {
		pkt := fr[14:]
		var off, fid uint32
		var more bool
		if fam.name == "v6" {
			ip := header.IPv6(pkt)
			if ip.DestinationAddress() != stack.AddrFrom(fam.b) {
				continue
			}
			if ip.NextHeader() != uint8(header.IPv6FragmentHeader) || int(ip.PayloadLength()) != len(pkt)-header.IPv6MinimumSize {
				t.Fatalf("next header %d, payload length %d in a %d-byte packet", ip.NextHeader(), ip.PayloadLength(), len(pkt))
			}
			fh := header.IPv6Fragment(pkt[header.IPv6MinimumSize:])
			if fh.NextHeader() != uint8(header.UDPProtocolNumber) {
				t.Fatalf("fragment header's next header %d", fh.NextHeader())
			}
			off, more, fid = uint32(fh.FragmentOffset())*8, fh.More(), fh.ID()
		} else {
			ip := header.IPv4(pkt)
			if ip.DestinationAddress() != stack.AddrFrom(fam.b) {
				continue
			}
			if !ip.IsChecksumValid() || int(ip.TotalLength()) != len(pkt) || ip.Flags()&header.IPv4FlagDontFragment != 0 {
				t.Fatalf("bad IPv4 fragment header %x", pkt[:20])
			}
			off, more, fid = uint32(ip.FragmentOffset()), ip.More(), uint32(ip.ID())
		}
		if len(pkt) > mtu {
			t.Errorf("a %d-byte IP packet after the path MTU fell to %d", len(pkt), mtu)
		}
		if pieces == 0 {
			id = fid
		}
		if fid != id || fid == 0 || int(off) != next || last {
			t.Fatalf("fragment %d: offset %d (want %d), more %v, ID %#x (first %#x)", pieces, off, next, more, fid, id)
		}
		hdr := header.IPv4MinimumSize
		if fam.name == "v6" {
			hdr = header.IPv6MinimumSize + header.IPv6FragmentExtHdrLength
		}
		if more && (len(pkt)-hdr)%8 != 0 {
			t.Fatalf("fragment %d carries %d bytes, not a multiple of 8", pieces, len(pkt)-hdr)
		}
		next += len(pkt) - hdr
		last = !more
		pieces++
	}
	if !last {
		t.Fatalf("%d fragments without a last", pieces)
	}
	return pieces, id
}

// A fragmented datagram allocates nothing once the scratch has grown to it.
func TestFragmentedSendAllocatesNothing(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			snd, s, p := fragmentingSender(t, fam)
			if n := testing.AllocsPerRun(200, func() {
				if err := snd.Send(p, netip.AddrPortFrom(fam.b, sink)); err != nil {
					panic(err)
				}
			}); n != 0 {
				t.Errorf("%v allocations per fragmented Send", n)
			}
			s.sink.Record(true)
			if err := snd.Send(p, netip.AddrPortFrom(fam.b, sink)); err != nil {
				t.Fatal(err)
			}
			if got := len(s.sink.Frames()); got != 4 {
				t.Fatalf("%d frames for a %d-byte datagram at path MTU 1280, want 4", got, len(p))
			}
			if st := snd.Stats(); st.FallbackTotal() != 0 || st.Fragmented != st.Fast-1 {
				t.Fatalf("%v", st)
			}
		})
	}
}

// fragmentingSender is a sender on a sink link whose path MTU to fam.b is
// 1280, warmed up with one 4000-byte datagram, which it returns.
func fragmentingSender(tb testing.TB, fam family) (*udpfast.Sender, *sinkStack, []byte) {
	s := newSinkStack(tb, nil)
	snd := s.sender(tb, netip.AddrPortFrom(fam.a, rtp), &udpfasttest.Fallback{}, udpfast.Options{})
	dst := netip.AddrPortFrom(fam.b, sink)
	if err := snd.Send(make([]byte, 172), dst); err != nil { // makes the entry
		tb.Fatal(err)
	}
	s.table.HandlePacketTooBig(stack.AddrFrom(fam.a), stack.AddrFrom(fam.b), rtp, 1280)
	p := make([]byte, 4000)
	if err := snd.Send(p, dst); err != nil {
		tb.Fatal(err)
	}
	return snd, s, p
}

// BenchmarkSendFragmented: a 4000-byte datagram to a destination whose path
// MTU fell to 1280, sent as 4 fragments in one link write.
func BenchmarkSendFragmented(b *testing.B) {
	for _, fam := range families {
		b.Run(fam.name, func(b *testing.B) {
			snd, _, p := fragmentingSender(b, fam)
			dst := netip.AddrPortFrom(fam.b, sink)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := snd.Send(p, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// In a batch, a datagram that needs fragments goes out in its place: the
// frames before it are written first, its fragments in one write, then the
// rest.
func TestSendBatchWithFragmented(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			snd, s, _ := fragmentingSender(t, fam)
			before := snd.Stats()
			payloads := [][]byte{make([]byte, 172), make([]byte, 4000), make([]byte, 172), make([]byte, 172)}
			for i, p := range payloads {
				frames.Seq(p, uint64(i))
			}
			s.sink.Record(true)
			if n, err := snd.SendBatch(payloads, []netip.AddrPort{netip.AddrPortFrom(fam.b, sink)}); n != 4 || err != nil {
				t.Fatalf("SendBatch: %d, %v", n, err)
			}
			got := s.sink.Frames()
			if len(got) != 7 {
				t.Fatalf("%d frames, want 1 + 4 fragments + 2", len(got))
			}
			for i, want := range map[int]uint64{0: 0, 5: 2, 6: 3} {
				if u, ok := frames.ParseUDP(got[i]); !ok || frames.SeqOf(u.Payload) != want {
					t.Errorf("frame %d: %+v, want the whole datagram %d", i, u, want)
				}
			}
			for i := 1; i <= 4; i++ {
				if _, ok := frames.ParseUDP(got[i]); ok {
					t.Errorf("frame %d is a whole datagram, want a fragment", i)
				}
			}
			if pieces, _ := checkFragments(t, fam, got[1:5], 1280); pieces != 4 {
				t.Errorf("%d fragments", pieces)
			}
			st := snd.Stats()
			if st.Fast-before.Fast != 4 || st.Fragmented-before.Fragmented != 1 || st.LinkWrites-before.LinkWrites != 3 {
				t.Fatalf("before %v, after %v; want 4 more fast, 1 fragmented, in 3 link writes", before, st)
			}
		})
	}
}
