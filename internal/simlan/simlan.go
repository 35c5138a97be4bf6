// Package simlan builds the simulated LAN that tests run on: stacks on one
// link/sim network, driven by one simulated clock, host n with the MAC and
// addresses internal/frames gives host n (or addresses of its own). A test
// moves time with Run; every stack settles after each timer, so the same
// seed gives the same run.
//
// A host's link can run a link.FrameHook (a fast filter) and, with
// Options.Record, keeps a copy of every frame it receives, so a test can
// check which MAC a frame went to without touching the code under test. A
// host can have media ports (HostOptions.Media); Open and Drain serve tests
// that exchange datagrams through them.
//
//	lan := simlan.New(t, simlan.Options{Seed: 1}, simlan.HostOptions{N: 1}, simlan.HostOptions{N: 2})
//	a, b := lan.Hosts[0], lan.Hosts[1]
//	... a.Stack ... b.SetHook(filter.Hook) ...
//	lan.Run(time.Second)
//
// Stacks and media ports are closed when the test ends.
package simlan

import (
	"io"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
)

// Options configure a LAN.
type Options struct {
	// Seed seeds the network, and the stacks: host i (from 0, in the order
	// they were added) gets Seed+i unless its HostOptions say otherwise.
	Seed uint64
	// Impairments shape every host's link.
	Impairments sim.Impairments
	// Trace, when set, receives a pcap of every frame sent on the LAN, with
	// simulated timestamps: the same seed and inputs give the same bytes.
	Trace io.Writer
	// Record makes every host keep a copy of each frame it receives, for
	// Host.Frames.
	Record bool
}

// HostOptions describe one host.
type HostOptions struct {
	// N is the host's number, 1 to 254: its MAC is frames.MAC(N), its
	// addresses frames.Addrs(N) unless Addrs says otherwise.
	N     byte
	Addrs []string // CIDR, e.g. "198.51.100.1/24" for an IPv4-only host
	// Gateways are the stack's default gateways.
	Gateways []string
	// Seed seeds the stack; zero means Options.Seed plus the host's index.
	Seed int64
	// RXChecksumOffload makes the link report received checksums verified.
	RXChecksumOffload bool
	// VLAN puts the host's link on this 802.1Q VLAN (sim EndpointOptions).
	VLAN uint16
	// Media, when set, gives the host media ports (Host.Media) over these
	// options' range. Their manager hooks the link itself: not on a LAN
	// that records.
	Media *mediaport.Options
	// WallClock runs the stack's timers on the real clock (and time stamps
	// cost what they cost in production) instead of the LAN's: for
	// benchmarks that deliver frames by hand and never Run the LAN.
	WallClock bool
}

// LAN is a set of hosts on one simulated switch.
type LAN struct {
	Clock   *sim.Clock
	Network *sim.Network
	Hosts   []*Host

	tb   testing.TB
	opts Options
}

// Host is one stack on the LAN.
type Host struct {
	Stack *stack.Stack
	Link  *sim.Endpoint
	Media *mediaport.Manager // with HostOptions.Media

	record bool
	mu     sync.Mutex
	frames [][]byte
	hook   link.FrameHook
}

// New builds a LAN with hosts on it (more can be added with AddHost).
func New(tb testing.TB, opts Options, hosts ...HostOptions) *LAN {
	tb.Helper()
	clock := sim.NewClock()
	netOpts := sim.NetworkOptions{Clock: clock, Seed: opts.Seed}
	if opts.Trace != nil {
		w, err := pcap.NewWriter(opts.Trace, clock, 0)
		if err != nil {
			tb.Fatal(err)
		}
		netOpts.Capture = w
	}
	network, err := sim.NewNetwork(netOpts)
	if err != nil {
		tb.Fatal(err)
	}
	l := &LAN{Clock: clock, Network: network, tb: tb, opts: opts}
	for _, o := range hosts {
		l.AddHost(o)
	}
	return l
}

// AddHost adds a host to the LAN.
func (l *LAN) AddHost(o HostOptions) *Host {
	l.tb.Helper()
	if o.N == 0 || o.N == 255 {
		l.tb.Fatalf("simlan: host number %d is not 1-254", o.N)
	}
	if o.Media != nil && l.opts.Record {
		l.tb.Fatal("simlan: a host with media ports cannot record its frames (the manager hooks the link)")
	}
	if o.Addrs == nil {
		o.Addrs = frames.Addrs(o.N)
	}
	if o.Seed == 0 {
		o.Seed = int64(l.opts.Seed) + int64(len(l.Hosts))
	}
	ep, err := l.Network.NewEndpoint(sim.EndpointOptions{MAC: frames.MAC(o.N), Impairments: l.opts.Impairments, RXChecksumOffload: o.RXChecksumOffload, VLAN: o.VLAN})
	if err != nil {
		l.tb.Fatal(err)
	}
	var clock tcpip.Clock = l.Clock
	if o.WallClock {
		clock = nil
	}
	st, err := stack.New(stack.Options{
		NICs:     []stack.NICOptions{{Name: "sim0", Link: ep, Addrs: o.Addrs}},
		Gateways: o.Gateways,
		Clock:    clock,
		Seed:     o.Seed,
	})
	if err != nil {
		l.tb.Fatal(err)
	}
	if !o.WallClock {
		l.Clock.AddSettler(st.Settle)
	}
	l.tb.Cleanup(st.Close)
	h := &Host{Stack: st, Link: ep, record: l.opts.Record}
	if h.record {
		ep.SetFrameHook(h.receive)
	}
	if o.Media != nil {
		h.Media = NewManager(l.tb, st, *o.Media)
	}
	l.Hosts = append(l.Hosts, h)
	return h
}

// Run advances simulated time by d.
func (l *LAN) Run(d time.Duration) { l.Clock.Advance(d) }

// SetHook installs hook on the host's link (nil removes it); on a LAN that
// records, it runs after the recorder.
func (h *Host) SetHook(hook link.FrameHook) {
	if !h.record {
		h.Link.SetFrameHook(hook)
		return
	}
	h.mu.Lock()
	h.hook = hook
	h.mu.Unlock()
}

func (h *Host) receive(frame []byte) link.Verdict {
	h.mu.Lock()
	h.frames = append(h.frames, append([]byte(nil), frame...))
	hook := h.hook
	h.mu.Unlock()
	if hook != nil {
		return hook(frame)
	}
	return link.Pass
}

// Frames returns the frames received since the last call (Options.Record).
func (h *Host) Frames() [][]byte {
	h.mu.Lock()
	f := h.frames
	h.frames = nil
	h.mu.Unlock()
	return f
}

// MAC returns the host's current Ethernet address.
func (h *Host) MAC() tcpip.LinkAddress { return h.Link.LinkAddress() }

// BindUDP returns a plain netstack UDP endpoint on the host, dual-stack,
// bound to port: a peer that sends and receives as any application would.
// It is closed when the test ends.
func (h *Host) BindUDP(tb testing.TB, port uint16) tcpip.Endpoint {
	tb.Helper()
	var wq waiter.Queue
	ep, err := h.Stack.Netstack().NewEndpoint(header.UDPProtocolNumber, header.IPv6ProtocolNumber, &wq)
	if err != nil {
		tb.Fatal(err)
	}
	ep.SocketOptions().SetV6Only(false)
	if err := ep.Bind(tcpip.FullAddress{Port: port}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ep.Close)
	return ep
}
