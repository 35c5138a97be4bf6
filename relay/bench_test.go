package relay_test

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/relay"
	"github.com/mediastack/mediastack/stack"
)

// sink is a link device that counts the frames written to it and drops
// them, allocating nothing.
type sink struct{ frames atomic.Uint64 }

func (s *sink) WriteFrames(f [][]byte) (int, error) { s.frames.Add(uint64(len(f))); return len(f), nil }
func (*sink) Close() error                          { return nil }

// relayBench is the relay host R alone on a link that drops what it
// sends, with static neighbours for T1 and T2, and a relay between
// R:20000 (T1's side) and R:20002 (T2's side). deliver hands R the next
// of a cycle of prebuilt RTP frames from T1, as its link would.
type relayBench struct {
	sink   *sink
	ep     *ethlink.Endpoint
	frames [][]byte
	next   int
	m      *mediaport.Manager
	svc    *relay.Service
	relay  *relay.Relay
}

func newRelayBench(tb testing.TB) *relayBench {
	tb.Helper()
	b := &relayBench{sink: &sink{}}
	ep, err := ethlink.New(ethlink.Options{Device: b.sink, MAC: frames.MAC(2), MTU: 1500})
	if err != nil {
		tb.Fatal(err)
	}
	b.ep = ep
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Name: "r", Link: ep, Addrs: frames.Addrs(2)}}, Seed: 2})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	for _, n := range []byte{1, 3} {
		if err := st.Netstack().AddStaticNeighbor(st.NICID(0), ipv4.ProtocolNumber, tcpip.AddrFrom4(frames.V4(n).As4()), frames.MAC(n)); err != nil {
			tb.Fatal(err)
		}
	}
	b.m = simlan.NewManager(tb, st, mediaport.Options{PortMin: 20000, PortMax: 20099})
	if b.svc, err = relay.New(relay.Options{Manager: b.m}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.svc.Close)
	t1, t2 := netip.AddrPortFrom(frames.V4(1), 20010), netip.AddrPortFrom(frames.V4(3), 20020)
	if b.relay, err = b.svc.Create(relay.Spec{Ports: [2]uint16{20000, 20002}, Peers: [2]netip.AddrPort{t1, t2}}); err != nil {
		tb.Fatal(err)
	}
	// 20 ms of G.711 (160 bytes) after a 12-byte header, seq 0..1023.
	for seq := range 1024 {
		pkt := make([]byte, 172)
		pkt[0], pkt[1] = 0x80, 0
		binary.BigEndian.PutUint16(pkt[2:], uint16(seq))
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq*160))
		binary.BigEndian.PutUint32(pkt[8:], 0x11223344)
		b.frames = append(b.frames, frames.UDP{
			Src: t1, Dst: netip.AddrPortFrom(frames.V4(2), 20000), Payload: pkt,
			SrcMAC: frames.MAC(1), DstMAC: frames.MAC(2),
		}.Build())
	}
	// The first datagram confirms T1 and the first send warms the fast path.
	for range 2 {
		b.deliver()
	}
	return b
}

func (b *relayBench) deliver() {
	b.ep.DeliverFrame(b.frames[b.next])
	b.next = (b.next + 1) % len(b.frames)
}

// TestRelayedPathAllocatesNothing: a datagram received, checked, counted
// (RTP loss and jitter included) and sent on by a relay allocates nothing.
func TestRelayedPathAllocatesNothing(t *testing.T) {
	b := newRelayBench(t)
	sent, slow := b.sink.frames.Load(), b.m.Stats().Send.FallbackTotal()
	if allocs := testing.AllocsPerRun(1000, b.deliver); allocs != 0 && !raceEnabled {
		t.Errorf("%v allocations per relayed datagram, want 0", allocs)
	}
	if got := b.sink.frames.Load() - sent; got != 1001 {
		t.Errorf("%d frames sent for 1001 datagrams", got)
	}
	if n := b.m.Stats().Send.FallbackTotal() - slow; n != 0 {
		t.Errorf("%d datagrams sent through netstack, want all fast", n)
	}
	info := b.relay.Info()
	if s := info.Sides[0].Stream; s.SSRC != 0x11223344 || s.ClockRate != 8000 || s.Received == 0 {
		t.Errorf("T1's stream: %+v", s)
	}
}

// BenchmarkRelayedPath: one datagram through a relay, from the link's
// receive hook to the frame written out (the link drops it).
func BenchmarkRelayedPath(bm *testing.B) {
	b := newRelayBench(bm)
	bm.ReportAllocs()
	bm.ResetTimer()
	for bm.Loop() {
		b.deliver()
	}
	bm.ReportMetric(float64(bm.Elapsed().Nanoseconds())/float64(bm.N), "ns/pkt")
}

// TestInfoWhileRelaying: the API reads a relay's state while datagrams
// flow (under -race: no data race between the receive path and Info);
// what the statistics skipped is counted, and everything is relayed.
func TestInfoWhileRelaying(t *testing.T) {
	b := newRelayBench(t)
	sent := b.sink.frames.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20000 {
			b.deliver()
		}
	}()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		_ = b.relay.Info().JSON()
	}
	sd := b.relay.Info().Sides[0]
	if got := b.sink.frames.Load() - sent; got != 20000 || sd.ReceivedPackets != 20002 {
		t.Errorf("%d frames sent, %d datagrams received; want 20000 and 20002", got, sd.ReceivedPackets)
	}
	// The cycle of 1024 sequence numbers restarts the source every lap
	// (A.1); a packet the statistics skipped counts as lost until the
	// same sequence number comes round again.
	if sd.Stream.Received+sd.StatsSkipped == 0 || sd.Stream.Restarts == 0 {
		t.Errorf("stream %+v, %d skipped, after %d reads", sd.Stream, sd.StatsSkipped, reads)
	}
}
