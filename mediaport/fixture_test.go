package mediaport_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The two hosts of the tests: A and B.
const hostA, hostB = 1, 2

var (
	addrA4, addrA6 = frames.V4(hostA), frames.V6(hostA)
	addrB4, addrB6 = frames.V4(hostB), frames.V6(hostB)
)

// host is one stack with a media port manager.
type host struct {
	st *stack.Stack
	m  *mediaport.Manager
}

// simLAN is two hosts, A and B, on a simulated switch, driven by a
// simulated clock.
type simLAN struct {
	*simlan.LAN
	a, b *host
}

// newSimLAN builds A and B (host 1 and 2 of internal/frames), each with a
// Manager over ports 20000-20099 unless opts say otherwise, and lets
// IPv6's link-local set-up traffic pass.
func newSimLAN(t testing.TB, im sim.Impairments, opts mediaport.Options) *simLAN {
	t.Helper()
	if opts.PortMin == 0 {
		opts.PortMin, opts.PortMax = 20000, 20099
	}
	lan := simlan.New(t, simlan.Options{Seed: 1, Impairments: im},
		simlan.HostOptions{N: hostA, Media: &opts}, simlan.HostOptions{N: hostB, Media: &opts})
	a, b := lan.Hosts[0], lan.Hosts[1]
	l := &simLAN{LAN: lan, a: &host{a.Stack, a.Media}, b: &host{b.Stack, b.Media}}
	l.Run(time.Second)
	return l
}

// datagram is what a read returned.
type datagram = simlan.Datagram

func dg(payload string, from netip.AddrPort) datagram {
	return datagram{Payload: payload, From: from.String()}
}

// drain reads every datagram p holds, without blocking.
func drain(t testing.TB, p *mediaport.Port) []datagram { return simlan.Drain(t, p) }

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
	for i, n := range []byte{hostA, hostB} {
		end := &wireEnd{}
		ep, err := ethlink.New(ethlink.Options{Device: end, MAC: frames.MAC(n), MTU: 1500})
		if err != nil {
			t.Fatal(err)
		}
		end.ep = ep
		w.ends[i] = end
		st, err := stack.New(stack.Options{
			NICs: []stack.NICOptions{{Name: "wire", Link: ep, Addrs: frames.Addrs(n)}},
			Seed: int64(n),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		hosts[i] = &host{st, simlan.NewManager(t, st, mediaport.Options{PortMin: 20000, PortMax: 20099})}
	}
	w.pump()
	return w, hosts[0], hosts[1]
}
