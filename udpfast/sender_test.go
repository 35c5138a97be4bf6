package udpfast_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/linktest"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
	"github.com/mediastack/mediastack/udpfast/udpfasttest"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// A sends from rtp, in the range the table and filter cover from base; the
// peer receives on sink.
const (
	base = 20000
	rtp  = base + 4
	sink = 6000
)

// The LAN: A sends, B is a peer on-link, R the gateway to the rest; B2 is
// the card B moves to.
const hostA, hostB, hostR, cardB2 = 1, 2, 254, 102

var macA, macB, macB2, macR = frames.MAC(hostA), frames.MAC(hostB), frames.MAC(cardB2), frames.MAC(hostR)

// family holds one IP version's addresses on the simulated LAN.
type family struct {
	name           string
	a, b           netip.Addr // sender (host A), peer (host B)
	remote         netip.Addr // off-link, via the gateway R
	gateway        netip.Addr
	maxFastPayload int
}

var (
	v4       = family{"v4", frames.V4(hostA), frames.V4(hostB), frames.Remote4, frames.V4(hostR), 1500 - 28}
	v6       = family{"v6", frames.V6(hostA), frames.V6(hostB), frames.Remote6, frames.V6(hostR), 1500 - 48}
	families = []family{v4, v6}
)

// fixture: A sends from rtp with a Sender whose table and fallback lane come
// from the real fast filter on A's link; B and R are plain netstack hosts.
type fixture struct {
	t     *testing.T
	fam   family
	lan   *simlan.LAN
	table *policyarp.Table
	snd   *udpfast.Sender
	rx    *receiver // on B, port sink
	seq   uint64
}

func newFixture(t *testing.T, fam family) *fixture {
	t.Helper()
	return newTracedFixture(t, fam, nil)
}

// newTracedFixture is newFixture with a pcap of the LAN's frames written to
// trace.
func newTracedFixture(t *testing.T, fam family, trace io.Writer) *fixture {
	t.Helper()
	lan := simlan.New(t, simlan.Options{Seed: 1, Impairments: sim.Impairments{Delay: time.Millisecond}, Trace: trace, Record: true},
		simlan.HostOptions{N: hostA, Gateways: []string{v4.gateway.String(), v6.gateway.String()}},
		simlan.HostOptions{N: hostB},
		simlan.HostOptions{N: hostR},
	)
	a := lan.Hosts[0]
	table, err := policyarp.New(policyarp.Options{Stack: a.Stack.Netstack(), NIC: a.Stack.NICID(0), BasePort: base, Ports: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(table.Close)
	filter, err := fastfilter.New(fastfilter.Options{Stack: a.Stack.Netstack(), NIC: a.Stack.NICID(0), PortMin: base, PortMax: base + 99})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(filter.Close)
	a.SetHook(filter.Hook)
	filter.SubscribeNeighborUpdates(table.HandleNeighborUpdate)
	filter.SubscribePacketTooBig(table.HandlePacketTooBig)
	reg, err := filter.Register(rtp, rtp+1, func(*fastfilter.Datagram) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	snd, err := udpfast.New(udpfast.Options{
		Table:    table,
		Link:     a.Link,
		Fallback: udpfast.EndpointFallback{Endpoint: reg.NetstackEndpoint(rtp)},
		Local:    netip.AddrPortFrom(fam.a, rtp),
	})
	if err != nil {
		t.Fatal(err)
	}
	lan.Run(time.Second) // IPv6 link-local set-up traffic
	for _, h := range lan.Hosts {
		h.Frames()
	}
	return &fixture{t: t, fam: fam, lan: lan, table: table, snd: snd, rx: &receiver{t: t, ep: lan.Hosts[1].BindUDP(t, sink)}}
}

func (f *fixture) peer() netip.AddrPort { return netip.AddrPortFrom(f.fam.b, sink) }

// send sends n numbered 172-byte datagrams to dst, with gap of simulated
// time after each.
func (f *fixture) send(n int, dst netip.AddrPort, gap time.Duration) {
	f.t.Helper()
	for i := 0; i < n; i++ {
		p := frames.Seq(make([]byte, 172), f.seq)
		f.seq++
		if err := f.snd.Send(p, dst); err != nil {
			f.t.Fatalf("Send #%d: %v", f.seq-1, err)
		}
		if gap > 0 {
			f.lan.Run(gap)
		}
		f.rx.poll()
	}
}

// expect checks the sender's counters against want (fast count and the
// non-zero fallback reasons).
func (f *fixture) expect(fast uint64, fallbacks map[udpfast.Reason]uint64) {
	f.t.Helper()
	st := f.snd.Stats()
	got := map[udpfast.Reason]uint64{}
	for r, n := range st.Fallbacks {
		if n != 0 {
			got[udpfast.Reason(r)] = n
		}
	}
	if fallbacks == nil {
		fallbacks = map[udpfast.Reason]uint64{}
	}
	if st.Fast != fast || fmt.Sprint(got) != fmt.Sprint(fallbacks) {
		f.t.Fatalf("at %v: fast %d fallbacks %v; want fast %d fallbacks %v", f.lan.Clock.Elapsed(), st.Fast, got, fast, fallbacks)
	}
}

// udpFramesAt returns the UDP datagrams from A to port sink that host h
// received since the last call, with the MAC they were sent to.
func udpFramesAt(h *simlan.Host) []frames.Datagram {
	var out []frames.Datagram
	for _, fr := range h.Frames() {
		if u, ok := frames.ParseUDP(fr); ok && u.Src.Port() == rtp {
			out = append(out, u)
		}
	}
	return out
}

// receiver reads what a netstack UDP endpoint receives.
type receiver struct {
	t   *testing.T
	ep  tcpip.Endpoint
	got []uint64
}

// poll reads what arrived, before netstack's receive buffer fills.
func (r *receiver) poll() {
	for {
		var b bytes.Buffer
		if _, err := r.ep.Read(&b, tcpip.ReadOptions{}); err != nil {
			return
		}
		r.got = append(r.got, frames.SeqOf(b.Bytes()))
	}
}

// seqs returns the sequence numbers of the datagrams received since the
// last call.
func (r *receiver) seqs() []uint64 {
	r.poll()
	got := r.got
	r.got = nil
	return got
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func (f *fixture) expectReceived(want []uint64) {
	f.t.Helper()
	if got := f.rx.seqs(); !slices.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		f.t.Fatalf("peer received %d datagrams, want %d; first difference at index %d: got %v, want %v",
			len(got), len(want), i, got[i:min(i+5, len(got))], want[i:min(i+5, len(want))])
	}
	if n := f.lan.Hosts[1].Stack.Netstack().Stats().UDP.ChecksumErrors.Value(); n != 0 {
		f.t.Fatalf("peer counted %d UDP checksum errors", n)
	}
}

// The first datagram to a peer netstack has not resolved goes through
// netstack and triggers the one ARP (NDP) exchange; the following ones go
// fast, to the MAC netstack learnt. Every datagram arrives, in order.
func TestFirstDatagramResolvesThenFast(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			f.send(1, f.peer(), 0)
			f.expect(0, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1})
			f.lan.Run(10 * time.Millisecond)
			f.send(9, f.peer(), time.Millisecond)
			f.lan.Run(10 * time.Millisecond)
			f.expect(9, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1})
			f.expectReceived(seqRange(0, 10))

			resolutions := 0
			for _, fr := range f.lan.Hosts[1].Frames() {
				u, isUDP := frames.ParseUDP(fr)
				switch {
				case isUDP && u.Src.Port() == rtp && u.DstMAC != macB:
					t.Errorf("datagram to MAC %s, want %s", u.DstMAC, macB)
				case frames.IsARPRequest(fr, fam.b), frames.IsNeighborSolicitation(fr, fam.b):
					resolutions++
				}
			}
			if resolutions != 1 {
				t.Errorf("peer saw %d address resolution requests, want 1", resolutions)
			}
		})
	}
}

// Datagrams sent while netstack is still resolving wait in netstack's queue
// behind the same resolution and arrive before the fast ones that follow.
func TestDatagramsDuringResolutionArriveInOrder(t *testing.T) {
	f := newFixture(t, v4)
	f.send(5, f.peer(), 0)
	f.expect(0, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1, udpfast.ReasonUnresolved: 4})
	f.lan.Run(10 * time.Millisecond)
	f.send(5, f.peer(), 0)
	f.lan.Run(10 * time.Millisecond)
	f.expect(5, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1, udpfast.ReasonUnresolved: 4})
	f.expectReceived(seqRange(0, 10))
}

// An entry nobody used for the aging time is re-learnt from netstack, which
// still knows the peer: the datagram that found it aged goes fast at once
// (issue 12), with the MAC netstack confirmed.
func TestAgedEntryRelearnsAtOnce(t *testing.T) {
	f := newFixture(t, v4)
	f.send(3, f.peer(), 10*time.Millisecond)
	f.lan.Run(policyarp.DefaultAging + time.Second)
	if e := f.table.Slot(rtp).Peek(stack.AddrFrom(f.peer().Addr())); e.State != policyarp.Aged {
		t.Fatalf("idle entry after the aging time: %v", e)
	}
	f.send(3, f.peer(), 10*time.Millisecond)
	f.expect(5, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1})
	if st := f.table.Stats(); st.Aged != 1 || st.Resolutions != 2 {
		t.Fatalf("table %+v: want the entry aged once and resolved again", st)
	}
	if e := f.table.Slot(rtp).Peek(stack.AddrFrom(f.peer().Addr())); e.State != policyarp.Valid || e.MAC != macB {
		t.Fatalf("after re-learning: %v", e)
	}
	f.expectReceived(seqRange(0, 6))
}

// A stream (50 packets/s for two minutes) stays on the fast path: the
// refresh loop keeps its entry valid, whatever netstack's NUD state does.
func TestRefreshKeepsStreamFast(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			f.send(6000, f.peer(), 20*time.Millisecond)
			f.expect(5999, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1})
			if st := f.table.Stats(); st.Aged != 0 || st.Refreshes < 110 {
				t.Fatalf("table stats %+v", st)
			}
			f.expectReceived(seqRange(0, 6000))
		})
	}
}

// A peer that moves to a new MAC and announces it (gratuitous ARP, or an
// unsolicited NA for IPv6) is reached at the new MAC from the next
// datagrams on: the fast filter reports the announcement, the table
// invalidates the entry at once and flushes netstack's neighbour, one
// datagram goes through netstack, which resolves the peer again, and the
// fast frames after it carry the new MAC. Nothing is lost.
func TestAnnouncedMACChange(t *testing.T) {
	for _, fam := range families {
		for _, how := range []string{"frame", "call"} {
			t.Run(fam.name+"/"+how, func(t *testing.T) {
				f := newFixture(t, fam)
				f.send(10, f.peer(), 10*time.Millisecond)
				udpFramesAt(f.lan.Hosts[1])

				b := f.lan.Hosts[1]
				b.Link.SetLinkAddress(macB2)
				switch how {
				case "frame": // through the wire and the real fast filter on A
					var announce []byte
					if fam.name == "v6" {
						announce = frames.UnsolicitedNA(fam.b, macB2)
					} else {
						announce = frames.GratuitousARP(header.ARPRequest, fam.b, macB2)
					}
					if _, err := b.Link.WriteFrames([][]byte{announce}); err != nil {
						t.Fatal(err)
					}
					f.lan.Run(2 * time.Millisecond)
				case "call": // as fastfilter would
					f.table.HandleNeighborUpdate(stack.AddrFrom(fam.b), macB2)
				}
				if e := f.table.Slot(rtp).Peek(stack.AddrFrom(f.peer().Addr())); e.State != policyarp.Invalidated {
					t.Fatalf("entry right after the announcement: %v", e)
				}
				f.send(10, f.peer(), 10*time.Millisecond)
				f.expect(18, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1, udpfast.ReasonInvalidated: 1})
				seen := udpFramesAt(b)
				if len(seen) != 10 {
					t.Fatalf("peer got %d datagrams at its new MAC, want 10", len(seen))
				}
				for _, u := range seen {
					if u.DstMAC != macB2 {
						t.Errorf("datagram #%d to %s, want the new MAC %s", frames.SeqOf(u.Payload), u.DstMAC, macB2)
					}
				}
				f.expectReceived(seqRange(0, 20))
			})
		}
	}
}

// A peer that changes its MAC without telling anyone is reached again
// without intervention once netstack's neighbour-unreachability detection
// gives up on the old MAC (REACHABLE times out to STALE, the refresh loop's
// lookup moves it to DELAY, then 3 unicast probes fail) and resolves anew.
func TestSilentMACChangeRecovers(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			f.send(10, f.peer(), 20*time.Millisecond)
			b := f.lan.Hosts[1]
			udpFramesAt(b)
			b.Link.SetLinkAddress(macB2)
			changed := f.lan.Clock.Elapsed()
			var resumed time.Duration
			for i := 0; i < 5000 && resumed == 0; i++ { // 100 s at 50 packets/s
				f.send(1, f.peer(), 20*time.Millisecond)
				if len(udpFramesAt(b)) > 0 {
					resumed = f.lan.Clock.Elapsed() - changed
				}
			}
			if resumed == 0 {
				t.Fatal("delivery did not resume within 100s of the MAC change")
			}
			// Upper bound from the defaults: REACHABLE ≤ 45s, DELAY 5s, PROBE
			// 3×1s, then the next refresh (1s) starts a new resolution.
			if resumed > 55*time.Second {
				t.Fatalf("delivery resumed after %v, later than NUD allows", resumed)
			}
			f.send(50, f.peer(), 20*time.Millisecond)
			seen := udpFramesAt(b)
			if len(seen) != 50 || seen[49].DstMAC != macB2 {
				t.Fatalf("after recovery: %d datagrams at the new MAC", len(seen))
			}
			st := f.snd.Stats()
			t.Logf("%s: silent MAC change: delivery resumed after %v simulated; fallbacks %v; table %+v",
				fam.name, resumed.Round(time.Millisecond), st.Fallbacks, f.table.Stats())
		})
	}
}

// Off-link destinations go to the gateway's MAC, with the far destination
// in the IP header.
func TestGatewayRouteUsesGatewayMAC(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			dst := netip.AddrPortFrom(fam.remote, sink)
			f.send(1, dst, 10*time.Millisecond)
			f.send(5, dst, time.Millisecond)
			f.expect(5, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1})
			if e := f.table.Slot(rtp).Peek(stack.AddrFrom(fam.remote)); e.NextHop != stack.AddrFrom(fam.gateway) {
				t.Fatalf("next hop %s, want the gateway", e.NextHop)
			}
			seen := udpFramesAt(f.lan.Hosts[2])
			if len(seen) != 6 {
				t.Fatalf("gateway got %d datagrams, want 6", len(seen))
			}
			for _, u := range seen {
				if u.DstMAC != macR || u.Dst.Addr() != fam.remote {
					t.Errorf("datagram to %s / %s, want %s / %s", u.DstMAC, u.Dst, macR, fam.remote)
				}
			}
		})
	}
}

// A new destination IP means a new entry in the port's set: one datagram
// through netstack. A new port at the same IP only changes the template, and
// going back to the first destination finds its entry still there.
func TestDestinationChange(t *testing.T) {
	f := newFixture(t, v4)
	f.send(2, f.peer(), 10*time.Millisecond)
	f.send(2, netip.AddrPortFrom(v4.b, sink+1), time.Millisecond)
	f.expect(3, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1})
	router := netip.AddrPortFrom(v4.gateway, sink)
	f.send(2, router, 10*time.Millisecond)
	f.send(2, f.peer(), 10*time.Millisecond)
	f.expect(6, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 2})
	seen := udpFramesAt(f.lan.Hosts[1])
	if len(seen) != 6 || seen[2].Dst.Port() != sink+1 || seen[5].Dst.Port() != sink {
		t.Fatalf("peer frames %+v", seen)
	}
}

// Datagrams that do not fit the MTU go through netstack, which fragments
// them; the largest that fits goes fast.
func TestTooBigGoesThroughNetstack(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			f.send(1, f.peer(), 10*time.Millisecond)
			for _, n := range []int{fam.maxFastPayload, fam.maxFastPayload + 1, 4000} {
				p := frames.Seq(make([]byte, n), f.seq)
				f.seq++
				if err := f.snd.Send(p, f.peer()); err != nil {
					t.Fatal(err)
				}
				f.lan.Run(10 * time.Millisecond)
			}
			f.expect(1, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1, udpfast.ReasonTooBig: 2})
			f.expectReceived(seqRange(0, 4))
		})
	}
}

func TestSendBatch(t *testing.T) {
	f := newFixture(t, v6)
	payloads := make([][]byte, 40)
	for i := range payloads {
		payloads[i] = frames.Seq(make([]byte, 172), uint64(i))
	}
	dsts := []netip.AddrPort{f.peer()}
	// Unresolved: each through netstack, in order.
	if n, err := f.snd.SendBatch(payloads[:5], dsts); n != 5 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	f.lan.Run(10 * time.Millisecond)
	before := f.snd.Stats().LinkWrites
	// Resolved: 35 fast datagrams in two link writes (the scratch holds 32).
	if n, err := f.snd.SendBatch(payloads[5:], dsts); n != 35 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	f.lan.Run(10 * time.Millisecond)
	f.expect(35, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1, udpfast.ReasonUnresolved: 4})
	if w := f.snd.Stats().LinkWrites - before; w != 2 {
		t.Errorf("%d link writes for 35 datagrams, want 2", w)
	}
	f.expectReceived(seqRange(0, 40))

	// Per-datagram destinations; a too-big one in the middle keeps its place.
	big := frames.Seq(make([]byte, 3000), 41)
	mixed := [][]byte{frames.Seq(make([]byte, 10), 40), big, frames.Seq(make([]byte, 10), 42)}
	if n, err := f.snd.SendBatch(mixed, []netip.AddrPort{f.peer(), f.peer(), f.peer()}); n != 3 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	f.lan.Run(10 * time.Millisecond)
	f.expectReceived([]uint64{40, 41, 42})

	if _, err := f.snd.SendBatch(payloads[:3], []netip.AddrPort{f.peer(), f.peer()}); !errors.Is(err, udpfast.ErrBatchShape) {
		t.Fatalf("mismatched destinations: %v", err)
	}
}

func TestBadDestination(t *testing.T) {
	f := newFixture(t, v4)
	for _, dst := range []netip.AddrPort{
		{},
		netip.AddrPortFrom(v4.b, 0),
		netip.AddrPortFrom(v6.b, sink),
	} {
		if err := f.snd.Send([]byte("x"), dst); !errors.Is(err, udpfast.ErrBadDestination) {
			t.Errorf("Send to %v: %v", dst, err)
		}
	}
	// 4-in-6 is the IPv4 destination it maps.
	if err := f.snd.Send(frames.Seq(make([]byte, 8), 0), netip.AddrPortFrom(netip.AddrFrom16(v4.b.As16()), sink)); err != nil {
		t.Fatal(err)
	}
	f.lan.Run(10 * time.Millisecond)
	f.expectReceived([]uint64{0})
	f.expect(0, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 1})
}

func TestNewValidatesOptions(t *testing.T) {
	f := newFixture(t, v4)
	good := udpfast.Options{Table: f.table, Link: f.lan.Hosts[0].Link, Fallback: &udpfasttest.Fallback{}, Local: netip.AddrPortFrom(v4.a, rtp+1)}
	if _, err := udpfast.New(good); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for name, mod := range map[string]func(*udpfast.Options){
		"no table":          func(o *udpfast.Options) { o.Table = nil },
		"no link":           func(o *udpfast.Options) { o.Link = nil },
		"no fallback":       func(o *udpfast.Options) { o.Fallback = nil },
		"no local port":     func(o *udpfast.Options) { o.Local = netip.AddrPortFrom(v4.a, 0) },
		"port not in table": func(o *udpfast.Options) { o.Local = netip.AddrPortFrom(v4.a, base+100) },
		"foreign address":   func(o *udpfast.Options) { o.Local = netip.AddrPortFrom(v4.b, rtp) },
	} {
		o := good
		mod(&o)
		if _, err := udpfast.New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// sinkStack is one stack on an ethlink endpoint over a linktest.Sink, with
// a static neighbour: no peer, no resolution, every frame lands in the sink.
type sinkStack struct {
	st    *stack.Stack
	sink  *linktest.Sink
	vsink *linktest.VnetSink // sink is its Sink
	link  *ethlink.Endpoint
	table *policyarp.Table
}

func newSinkStack(tb testing.TB, clock tcpip.Clock) *sinkStack {
	return newSinkStackSegmenting(tb, clock, false)
}

// newSinkStackSegmenting is newSinkStack whose link, with segment, takes UDP
// trains and cuts them as Linux would (linktest.VnetSink).
func newSinkStackSegmenting(tb testing.TB, clock tcpip.Clock, segment bool) *sinkStack {
	tb.Helper()
	vs := linktest.NewVnetSink(2048)
	sk := &vs.Sink
	var dev ethlink.Device = sk
	if segment {
		dev = vs
	}
	ep, err := ethlink.New(ethlink.Options{Device: dev, MAC: macA, MTU: 1500, UDPSegmentation: segment})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := stack.New(stack.Options{
		NICs:  []stack.NICOptions{{Name: "sink0", Link: ep, Addrs: frames.Addrs(hostA)}},
		Clock: clock,
		Seed:  1,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	table, err := policyarp.New(policyarp.Options{Stack: st.Netstack(), NIC: st.NICID(0), BasePort: base, Ports: 100})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(table.Close)
	for _, a := range []netip.Addr{v4.b, v6.b} {
		if err := table.SetStatic(stack.AddrFrom(a), macB); err != nil {
			tb.Fatal(err)
		}
	}
	return &sinkStack{st: st, sink: sk, vsink: vs, link: ep, table: table}
}

func (s *sinkStack) sender(tb testing.TB, local netip.AddrPort, fb udpfast.Fallback, opts udpfast.Options) *udpfast.Sender {
	tb.Helper()
	opts.Table, opts.Link, opts.Fallback, opts.Local = s.table, s.link, fb, local
	snd, err := udpfast.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return snd
}

// A full link queue sends the datagrams it refused through netstack, after
// the ones it took, and counts them.
func TestQueueFullFallsBack(t *testing.T) {
	s := newSinkStack(t, nil)
	fb := &udpfasttest.Fallback{}
	snd := s.sender(t, netip.AddrPortFrom(v4.a, rtp), fb, udpfast.Options{})
	dst := netip.AddrPortFrom(v4.b, sink)
	if err := snd.Send([]byte("first"), dst); err != nil { // makes the entry, static: fast at once
		t.Fatal(err)
	}
	s.sink.SetRoom(0)
	if err := snd.Send([]byte("full"), dst); err != nil {
		t.Fatal(err)
	}
	s.sink.SetRoom(4)
	payloads := make([][]byte, 10)
	for i := range payloads {
		payloads[i] = frames.Seq(make([]byte, 8), uint64(i))
	}
	if n, err := snd.SendBatch(payloads, []netip.AddrPort{dst}); n != 10 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	st := snd.Stats()
	if st.Fast != 5 || st.Fallbacks[udpfast.ReasonQueueFull] != 7 || st.FallbackTotal() != 7 {
		t.Fatalf("stats %+v", st)
	}
	var got []string
	for _, d := range fb.Datagrams() {
		got = append(got, string(d.Payload))
	}
	want := []string{"full"}
	for i := 4; i < 10; i++ {
		want = append(want, string(payloads[i]))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("fallback lane got %q, want %q", got, want)
	}

	// When netstack refuses too, the caller hears of it.
	s.sink.SetRoom(0)
	fb.Err = errors.New("netstack full")
	if err := snd.Send([]byte("lost?"), dst); err == nil {
		t.Fatal("Send reported success although both lanes refused")
	}
	if n, err := snd.SendBatch(payloads[:3], []netip.AddrPort{dst}); n != 0 || err == nil {
		t.Fatalf("SendBatch = %d, %v; want 0 and an error", n, err)
	}
	if snd.Stats().FallbackErrors != 2 {
		t.Fatalf("FallbackErrors = %d", snd.Stats().FallbackErrors)
	}
}

// Zero allocations per fast datagram, single and batched, both families.
func TestFastPathAllocatesNothing(t *testing.T) {
	s := newSinkStack(t, nil)
	for i, fam := range families {
		snd := s.sender(t, netip.AddrPortFrom(fam.a, rtp+uint16(2*i)), &udpfasttest.Fallback{}, udpfast.Options{})
		dst := netip.AddrPortFrom(fam.b, sink)
		payload := make([]byte, 172)
		payloads := make([][]byte, 32)
		for i := range payloads {
			payloads[i] = payload
		}
		dsts := []netip.AddrPort{dst}
		if err := snd.Send(payload, dst); err != nil { // makes the entry
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() {
			if err := snd.Send(payload, dst); err != nil {
				panic(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per Send", fam.name, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			if _, err := snd.SendBatch(payloads, dsts); err != nil {
				panic(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per SendBatch of 32", fam.name, n)
		}
		if st := snd.Stats(); st.FallbackTotal() != 0 { // static neighbour: even the first is fast
			t.Fatalf("%s: fallbacks %v", fam.name, st.Fallbacks)
		}
	}
}

// The same scenario on the simulated LAN gives the same packet trace, byte
// for byte: first resolution, a stream, an announced and a silent MAC
// change, idling past the aging time.
func TestTraceIsDeterministic(t *testing.T) {
	run := func() [32]byte {
		var trace bytes.Buffer
		f := newTracedFixture(t, v4, &trace)
		f.send(100, f.peer(), 20*time.Millisecond)
		b := f.lan.Hosts[1]
		b.Link.SetLinkAddress(macB2)
		if _, err := b.Link.WriteFrames([][]byte{frames.GratuitousARP(header.ARPRequest, v4.b, macB2)}); err != nil {
			t.Fatal(err)
		}
		f.send(100, f.peer(), 20*time.Millisecond)
		b.Link.SetLinkAddress(macB)
		f.send(3000, f.peer(), 20*time.Millisecond)
		f.lan.Run(2 * policyarp.DefaultAging)
		f.send(10, f.peer(), 20*time.Millisecond)
		return sha256.Sum256(trace.Bytes())
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("two runs gave different traces: %x vs %x", a, b)
	}
}
