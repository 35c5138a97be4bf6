// Package p2spsim runs P2SP nodes (origin, peers, clients) as mediastack
// stacks on one simulated LAN (link/sim), each with its egress capped, for
// the system tests and `mediastack demo p2sp`.
//
// anacrolix/torrent runs on wall-clock timers and goroutines of its own, so
// the LAN's clock cannot wait to be advanced by hand: a LAN paces it
// against real time (sim.Clock.Pace). A simulated second lasts a real
// second and a 16 Mbit/s cap moves 2 MB a second on the wall clock too.
// Runs are not reproducible packet for packet; test invariants (bytes from
// every source, a file intact, a peer banned), not byte splits.
//
//	lan, err := p2spsim.New(p2spsim.Options{Bandwidth: 16e6},
//		p2spsim.NodeOptions{Name: "origin", Extra: 1}, p2spsim.NodeOptions{Name: "client"})
//	defer lan.Close()
//	origin := lan.Node("origin") // origin.Net is its p2sp.Network, origin.Addrs its addresses
package p2spsim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/stack"
)

// Options configure a LAN.
type Options struct {
	// Seed seeds the network's random draws and the stacks.
	Seed uint64
	// Bandwidth caps every node's egress, in bits per second (0: no cap).
	Bandwidth int64
	// Delay is every link's one-way delay (default 1ms).
	Delay time.Duration
	// QueueLimit drops frames that would wait longer than this behind the
	// cap, as a tbf's latency does (default 50ms; with a cap only).
	QueueLimit time.Duration
	// Tick is how often the clock catches up with real time (default
	// sim.DefaultPaceTick).
	Tick time.Duration
}

// NodeOptions describe one node.
type NodeOptions struct {
	// Name names the node for Node and in messages.
	Name string
	// Extra is how many addresses the node has beyond its first, of each
	// family (an origin's file-info server listens on a second one).
	Extra int
	// Bandwidth, when not 0, caps this node's egress instead of
	// Options.Bandwidth.
	Bandwidth int64
}

// Node is one stack on the LAN.
type Node struct {
	Name  string
	Stack *stack.Stack
	Link  *sim.Endpoint
	// Net is the node's p2sp.Network: every socket on its stack.
	Net p2sp.Network
	// V4 and V6 are the node's addresses, its first of each family first.
	V4, V6 []netip.Addr
}

// LAN is the simulated network and its nodes.
type LAN struct {
	Clock   *sim.Clock
	Network *sim.Network
	Nodes   []*Node

	stopPacing context.CancelFunc
	paced      chan struct{}
	closeOnce  sync.Once
}

// New builds the LAN with its nodes and starts pacing its clock. Close it.
func New(opts Options, nodes ...NodeOptions) (*LAN, error) {
	if len(nodes) == 0 {
		return nil, errors.New("p2spsim: no nodes")
	}
	if opts.Delay == 0 {
		opts.Delay = time.Millisecond
	}
	if opts.QueueLimit == 0 && opts.Bandwidth > 0 {
		opts.QueueLimit = 50 * time.Millisecond
	}
	clock := sim.NewClock()
	network, err := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: opts.Seed})
	if err != nil {
		return nil, err
	}
	l := &LAN{Clock: clock, Network: network}
	host := byte(10)
	for i, no := range nodes {
		if no.Name == "" || l.Node(no.Name) != nil {
			l.closeStacks()
			return nil, fmt.Errorf("p2spsim: node %d: want a unique name, have %q", i, no.Name)
		}
		n, err := l.addNode(opts, no, &host, int64(opts.Seed)+int64(i))
		if err != nil {
			l.closeStacks()
			return nil, fmt.Errorf("p2spsim: node %s: %w", no.Name, err)
		}
		l.Nodes = append(l.Nodes, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stopPacing, l.paced = cancel, make(chan struct{})
	go func() {
		defer close(l.paced)
		_ = clock.Pace(ctx, opts.Tick)
	}()
	return l, nil
}

func (l *LAN) addNode(opts Options, no NodeOptions, host *byte, seed int64) (*Node, error) {
	if int(*host)+no.Extra >= 250 {
		return nil, errors.New("too many addresses")
	}
	im := sim.Impairments{Delay: opts.Delay, Bandwidth: opts.Bandwidth, QueueLimit: opts.QueueLimit}
	if no.Bandwidth != 0 {
		im.Bandwidth = no.Bandwidth
		if im.QueueLimit == 0 {
			im.QueueLimit = 50 * time.Millisecond
		}
	}
	n := &Node{Name: no.Name}
	var cidrs []string
	for range no.Extra + 1 {
		n.V4 = append(n.V4, frames.V4(*host))
		n.V6 = append(n.V6, frames.V6(*host))
		cidrs = append(cidrs, frames.V4(*host).String()+"/24", frames.V6(*host).String()+"/64")
		*host++
	}
	ep, err := l.Network.NewEndpoint(sim.EndpointOptions{MAC: frames.MAC(n.V4[0].As4()[3]), Impairments: im})
	if err != nil {
		return nil, err
	}
	st, err := stack.New(stack.Options{
		NICs:  []stack.NICOptions{{Name: "sim0", Link: ep, Addrs: cidrs}},
		Clock: l.Clock,
		Seed:  seed,
	})
	if err != nil {
		return nil, err
	}
	n.Stack, n.Link, n.Net = st, ep, p2sp.StackNetwork(st)
	return n, nil
}

// Node returns the node called name, or nil.
func (l *LAN) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Close stops the clock and closes every stack.
func (l *LAN) Close() {
	l.closeOnce.Do(func() {
		l.stopPacing()
		<-l.paced
		l.closeStacks()
	})
}

func (l *LAN) closeStacks() {
	for _, n := range l.Nodes {
		n.Stack.Close()
	}
}

// URL returns "http://ADDR:PORT" for the node's first address of the
// family of v6.
func (n *Node) URL(port uint16, v6 bool) string {
	return "http://" + n.AddrPort(0, port, v6).String()
}

// AddrPort returns the node's i-th address of a family with port.
func (n *Node) AddrPort(i int, port uint16, v6 bool) netip.AddrPort {
	if v6 {
		return netip.AddrPortFrom(n.V6[i], port)
	}
	return netip.AddrPortFrom(n.V4[i], port)
}
