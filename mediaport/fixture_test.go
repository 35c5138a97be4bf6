package mediaport_test

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const (
	macA = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x0a")
	macB = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x0b")
)

var (
	addrA4 = netip.MustParseAddr("198.51.100.1")
	addrB4 = netip.MustParseAddr("198.51.100.2")
	addrA6 = netip.MustParseAddr("2001:db8::1")
	addrB6 = netip.MustParseAddr("2001:db8::2")
)

// past is a read deadline long gone: a read returns what is buffered or
// fails at once, which is how single-goroutine simulations read.
var past = time.Unix(1, 0)

// host is one stack with a media port manager.
type host struct {
	st *stack.Stack
	m  *mediaport.Manager
}

// simLAN is two hosts, A and B, on a simulated switch, driven by a
// simulated clock.
type simLAN struct {
	clock *sim.Clock
	net   *sim.Network
	a, b  *host
}

// newSimLAN builds A (198.51.100.1, 2001:db8::1) and B (.2, ::2), each with
// a Manager over ports 20000-20099, and lets IPv6's link-local set-up
// traffic pass.
func newSimLAN(t testing.TB, im sim.Impairments, opts mediaport.Options) *simLAN {
	t.Helper()
	clock := sim.NewClock()
	network, err := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := &simLAN{clock: clock, net: network}
	if opts.PortMin == 0 {
		opts.PortMin, opts.PortMax = 20000, 20099
	}
	newHost := func(mac tcpip.LinkAddress, seed int64, addrs ...string) *host {
		ep, err := network.NewEndpoint(sim.EndpointOptions{MAC: mac, Impairments: im})
		if err != nil {
			t.Fatal(err)
		}
		st, err := stack.New(stack.Options{
			NICs:  []stack.NICOptions{{Name: "sim0", Link: ep, Addrs: addrs}},
			Clock: clock,
			Seed:  seed,
		})
		if err != nil {
			t.Fatal(err)
		}
		clock.AddSettler(st.Settle)
		t.Cleanup(st.Close)
		m, err := mediaport.NewManager(st, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return &host{st: st, m: m}
	}
	l.a = newHost(macA, 1, "198.51.100.1/24", "2001:db8::1/64")
	l.b = newHost(macB, 2, "198.51.100.2/24", "2001:db8::2/64")
	l.run(time.Second)
	return l
}

func (l *simLAN) run(d time.Duration) { l.clock.Advance(d) }

// datagram is what a read returned.
type datagram struct {
	Payload string
	From    string
}

func dg(payload string, from netip.AddrPort) datagram { return datagram{payload, from.String()} }

// drain reads every datagram p holds, without blocking.
func drain(t testing.TB, p *mediaport.Port) []datagram {
	t.Helper()
	if err := p.SetReadDeadline(past); err != nil {
		t.Fatal(err)
	}
	defer p.SetReadDeadline(time.Time{})
	var got []datagram
	buf := make([]byte, 65536)
	for {
		n, from, err := p.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatalf("reading port %d: %v", p.Port(), err)
		}
		got = append(got, dg(string(buf[:n]), from))
	}
}

// wire joins two ethlink endpoints back to back without a clock or a
// goroutine: frames written by one end wait in reused buffers until pump
// delivers them to the other, so a steady exchange allocates nothing on
// the wire itself. Stacks on it use the real clock.
type wire struct {
	ends [2]*wireEnd
}

type wireEnd struct {
	mu      sync.Mutex
	queue   [][]byte // frames written, not yet delivered: queue[:n]
	n       int
	spare   [][]byte // the other buffer set, swapped in by pump
	ep      *ethlink.Endpoint
	written uint64
}

func (e *wireEnd) WriteFrames(frames [][]byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range frames {
		if e.n == len(e.queue) {
			e.queue = append(e.queue, nil)
		}
		e.queue[e.n] = append(e.queue[e.n][:0], f...)
		e.n++
		e.written++
	}
	return len(frames), nil
}

func (*wireEnd) Close() error { return nil }

// take swaps out the pending frames.
func (e *wireEnd) take() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.queue[:e.n]
	e.queue, e.spare = e.spare[:cap(e.spare)], out[:cap(out)]
	e.n = 0
	return out
}

// pump delivers frames both ways until neither end has any left.
func (w *wire) pump() {
	for {
		moved := false
		for i, e := range w.ends {
			for _, f := range e.take() {
				w.ends[1-i].ep.DeliverFrame(f)
				moved = true
			}
		}
		if !moved {
			return
		}
	}
}

// newWireHosts builds A and B (same addresses as newSimLAN) on a wire,
// with the real clock, and Managers over 20000-20099.
func newWireHosts(t testing.TB) (*wire, *host, *host) {
	t.Helper()
	w := &wire{}
	hosts := make([]*host, 2)
	for i, mac := range []tcpip.LinkAddress{macA, macB} {
		end := &wireEnd{}
		ep, err := ethlink.New(ethlink.Options{Device: end, MAC: mac, MTU: 1500})
		if err != nil {
			t.Fatal(err)
		}
		end.ep = ep
		w.ends[i] = end
		n := byte(i + 1)
		st, err := stack.New(stack.Options{
			NICs: []stack.NICOptions{{Name: "wire", Link: ep, Addrs: []string{
				netip.AddrFrom4([4]byte{198, 51, 100, n}).String() + "/24",
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: n}).String() + "/64",
			}}},
			Seed: int64(n),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		m, err := mediaport.NewManager(st, mediaport.Options{PortMin: 20000, PortMax: 20099})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		hosts[i] = &host{st: st, m: m}
	}
	w.pump()
	return w, hosts[0], hosts[1]
}

func mustOpen(t testing.TB, m *mediaport.Manager, port uint16) *mediaport.Port {
	t.Helper()
	p, err := m.Open(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
