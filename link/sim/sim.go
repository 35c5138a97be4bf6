// Package sim is an in-memory Ethernet network for deterministic simulation:
// a switch joining any number of endpoints, each with its own delay, jitter,
// loss, duplication, reordering and bandwidth limit, all driven by a seeded
// random source and a simulated Clock. Nothing sleeps and nothing reads the
// wall clock, so the same seed gives the same packet trace, byte for byte.
//
// Plug it in like any other link:
//
//	clock := sim.NewClock()
//	network, _ := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: 1})
//	ep, _ := network.NewEndpoint(sim.EndpointOptions{MAC: mac, Impairments: sim.Impairments{Delay: 20 * time.Millisecond}})
//	st, _ := stack.New(stack.Options{NICs: []stack.NICOptions{{Link: ep, Addrs: ...}}, Clock: clock, Seed: 1})
//	clock.AddSettler(st.Settle) // finish each event's TCP work before the next
//	network.Run(time.Second)
//
// Code with wall-clock timers of its own (a BitTorrent library, say) cannot
// run on a clock that only moves when told: Network.Pace drives the clock in
// step with real time instead, giving up reproducibility (clock.go, Pace).
//
// Each Endpoint is a link/ethlink Endpoint, so the fast filter hooks it and the
// fast send path writes raw frames to it exactly as on a TAP.
package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/pcap"
)

// NetworkOptions configure a Network.
type NetworkOptions struct {
	// Clock drives deliveries. Required; share it with the stacks.
	Clock *Clock
	// Seed seeds every random draw of the network (each endpoint gets its
	// own stream derived from it, so one endpoint's traffic does not shift
	// another's draws).
	Seed uint64
	// Capture, when set, records every frame as it leaves its sender,
	// before impairments.
	Capture *pcap.Writer
}

// Impairments shape the frames an endpoint sends.
type Impairments struct {
	// Delay is the one-way propagation delay.
	Delay time.Duration
	// Jitter adds a uniform random delay in [0, Jitter). It never reorders
	// frames by itself: a frame is not delivered before the one sent ahead
	// of it. Use Reorder for that.
	Jitter time.Duration
	// Loss is the probability that a frame is dropped.
	Loss float64
	// Duplicate is the probability that a frame is delivered twice.
	Duplicate float64
	// Reorder is the probability that a frame is held back by ReorderDelay,
	// so frames sent after it overtake it.
	Reorder float64
	// ReorderDelay is the hold-back of a reordered frame (default: Delay,
	// at least 1ms).
	ReorderDelay time.Duration
	// Bandwidth limits the link in bits per second (0: unlimited). Frames
	// queue behind one another for their serialization time.
	Bandwidth int64
	// QueueLimit drops frames (tail drop) that would wait longer than this
	// behind the bandwidth limit (0: no limit).
	QueueLimit time.Duration
}

func (im Impairments) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", im.Loss}, {"Duplicate", im.Duplicate}, {"Reorder", im.Reorder}} {
		if p.v < 0 || p.v > 1 {
			return fmt.Errorf("sim: %s %v is not a probability in [0, 1]", p.name, p.v)
		}
	}
	if im.Delay < 0 || im.Jitter < 0 || im.ReorderDelay < 0 || im.QueueLimit < 0 || im.Bandwidth < 0 {
		return errors.New("sim: negative delay, jitter, bandwidth or queue limit")
	}
	return nil
}

// Stats count what the network did with frames. Fields are atomic.
type Stats struct {
	Sent       atomic.Uint64 // frames handed to the network
	Delivered  atomic.Uint64 // frame copies delivered to an endpoint
	Lost       atomic.Uint64 // dropped by Loss
	QueueDrops atomic.Uint64 // dropped by QueueLimit
	Duplicated atomic.Uint64
	Reordered  atomic.Uint64
	Unknown    atomic.Uint64 // unicast to a MAC no endpoint has
}

// Network is a switch joining simulated endpoints.
type Network struct {
	clock   *Clock
	seed    uint64
	capture *pcap.Writer

	mu    sync.Mutex
	ports []*Endpoint

	Stats Stats
}

// NewNetwork returns an empty network.
func NewNetwork(opts NetworkOptions) (*Network, error) {
	if opts.Clock == nil {
		return nil, errors.New("sim: NetworkOptions.Clock is nil")
	}
	return &Network{clock: opts.Clock, seed: opts.Seed, capture: opts.Capture}, nil
}

// Clock returns the network's clock.
func (n *Network) Clock() *Clock { return n.clock }

// Run advances simulated time by d, delivering frames as they fall due.
func (n *Network) Run(d time.Duration) { n.clock.Advance(d) }

// RunUntil advances time in steps of step until cond holds or limit has
// passed, and reports whether cond held.
func (n *Network) RunUntil(cond func() bool, step, limit time.Duration) bool {
	for waited := time.Duration(0); ; waited += step {
		n.clock.Settle()
		if cond() {
			return true
		}
		if waited >= limit {
			return false
		}
		n.clock.Advance(step)
	}
}

// EndpointOptions configure one endpoint of a Network.
type EndpointOptions struct {
	// MAC is the endpoint's Ethernet address (required, unicast).
	MAC tcpip.LinkAddress
	// MTU defaults to 1500.
	MTU uint32
	// Impairments shape the frames this endpoint sends.
	Impairments Impairments
	// RXChecksumOffload makes the endpoint claim verified checksums.
	RXChecksumOffload bool
	// TCPOffload sends large TCP packets from netstack as frames cut from
	// a header template (a *tcpoffload.Engine in mode Soft, one per
	// endpoint, made with the network's Clock; the default, nil, is off).
	TCPOffload link.TCPOffload
	// VLAN makes the endpoint the link of this 802.1Q VLAN (ethlink
	// Options.VLAN): it tags what it sends and takes only its VLAN's
	// frames. 0: untagged.
	VLAN uint16
}

// Endpoint is one port of the network: a netstack LinkEndpoint.
type Endpoint struct {
	*ethlink.Endpoint
	network *Network
	index   int

	// Guarded by network.mu.
	impairments Impairments
	rng         *rand.Rand
	busyUntil   time.Duration // when the link finishes serializing queued frames
	lastArrival time.Duration // keeps jittered frames in order
}

var (
	_ tcpipstack.LinkEndpoint = (*Endpoint)(nil)
	_ link.FrameWriter        = (*Endpoint)(nil)
	_ link.Hookable           = (*Endpoint)(nil)
)

// NewEndpoint adds an endpoint to the network.
func (n *Network) NewEndpoint(opts EndpointOptions) (*Endpoint, error) {
	if err := opts.Impairments.validate(); err != nil {
		return nil, err
	}
	if len(opts.MAC) != header.EthernetAddressSize || header.IsMulticastEthernetAddress(opts.MAC) {
		return nil, fmt.Errorf("sim: MAC %q is not a unicast Ethernet address", opts.MAC)
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ep := &Endpoint{
		network:     n,
		index:       len(n.ports),
		impairments: opts.Impairments,
		rng:         rand.New(rand.NewPCG(n.seed, uint64(len(n.ports))+1)),
	}
	eth, err := ethlink.New(ethlink.Options{
		Device:            device{ep},
		MAC:               opts.MAC,
		MTU:               opts.MTU,
		RXChecksumOffload: opts.RXChecksumOffload,
		TCPOffload:        opts.TCPOffload,
		VLAN:              opts.VLAN,
	})
	if err != nil {
		return nil, err
	}
	ep.Endpoint = eth
	n.ports = append(n.ports, ep)
	return ep, nil
}

// SetImpairments changes how the endpoint's future frames are shaped.
func (e *Endpoint) SetImpairments(im Impairments) error {
	if err := im.validate(); err != nil {
		return err
	}
	e.network.mu.Lock()
	e.impairments = im
	e.network.mu.Unlock()
	return nil
}

// device adapts an Endpoint to ethlink.Device: writes go onto the network.
type device struct{ ep *Endpoint }

func (d device) WriteFrames(frames [][]byte) (int, error) {
	for _, f := range frames {
		d.ep.network.transmit(d.ep, f)
	}
	return len(frames), nil
}

func (device) Close() error { return nil }

// transmit schedules the delivery of frame from src to its destinations.
func (n *Network) transmit(src *Endpoint, frame []byte) {
	n.Stats.Sent.Add(1)
	if n.capture != nil {
		_ = n.capture.WriteFrame(frame)
	}
	if len(frame) < header.EthernetMinimumSize {
		return
	}
	dst := header.Ethernet(frame).DestinationAddress()
	now := n.clock.Elapsed()

	n.mu.Lock()
	defer n.mu.Unlock()
	im := &src.impairments
	// Serialization on the sender's link comes first: a lost frame still
	// used the link.
	start := max(now, src.busyUntil)
	if im.Bandwidth > 0 {
		if im.QueueLimit > 0 && start-now > im.QueueLimit {
			n.Stats.QueueDrops.Add(1)
			return
		}
		src.busyUntil = start + time.Duration(int64(len(frame))*8*int64(time.Second)/im.Bandwidth)
		start = src.busyUntil
	}
	if im.Loss > 0 && src.rng.Float64() < im.Loss {
		n.Stats.Lost.Add(1)
		return
	}
	copies := 1
	if im.Duplicate > 0 && src.rng.Float64() < im.Duplicate {
		n.Stats.Duplicated.Add(1)
		copies = 2
	}
	arrival := start + im.Delay
	if im.Jitter > 0 {
		arrival += time.Duration(src.rng.Int64N(int64(im.Jitter)))
	}
	arrival = max(arrival, src.lastArrival)
	src.lastArrival = arrival
	if im.Reorder > 0 && src.rng.Float64() < im.Reorder {
		n.Stats.Reordered.Add(1)
		hold := im.ReorderDelay
		if hold == 0 {
			hold = max(im.Delay, time.Millisecond)
		}
		arrival += hold
	}

	var targets []*Endpoint
	if header.IsMulticastEthernetAddress(dst) || dst == header.EthernetBroadcastAddress {
		for _, p := range n.ports {
			if p != src {
				targets = append(targets, p)
			}
		}
	} else {
		for _, p := range n.ports {
			if p != src && p.LinkAddress() == dst {
				targets = append(targets, p)
			}
		}
		if len(targets) == 0 {
			n.Stats.Unknown.Add(1)
			return
		}
	}
	for i := 0; i < copies; i++ {
		for _, t := range targets {
			t := t
			buf := append([]byte(nil), frame...) // each its own: DeliverFrame may move bytes
			n.clock.AfterFunc(arrival-now, func() {
				n.Stats.Delivered.Add(1)
				t.DeliverFrame(buf)
			})
		}
	}
}
