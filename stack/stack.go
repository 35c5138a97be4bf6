// Package stack assembles a gVisor netstack (IPv4, IPv6, ARP, ICMPv4/v6, UDP,
// TCP) over one or more mediastack links, with addresses, on-link routes and
// default gateways from plain strings, an injectable clock and a seed for
// every random choice the stack makes.
//
// ListenTCP, DialTCP, ListenUDP and DialUDP give the stack's sockets as Go
// net types; Listen is ListenTCP for servers that copy files to their
// connections (net/http), with large writes.
//
// The fast paths (fastfilter, udpfast, policyarp) plug in beside the stack:
// fastfilter as the FrameHook of the links, udpfast writing raw frames to them
// (docs/design.md).
//
// With a link/sim network, a sim.Clock and a fixed Seed, a run is
// reproducible: register Settle with the clock (sim.Clock.AddSettler) so each
// simulated event's TCP work is finished before the next one starts.
package stack

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/mediastack/mediastack/internal/tcpipaddr"
)

// NICOptions describe one network interface of the stack.
type NICOptions struct {
	// Name appears in netstack's NIC info and in errors.
	Name string
	// Link is the link endpoint (tap, raw, sim, or any netstack endpoint).
	Link tcpipstack.LinkEndpoint
	// Addrs are the interface's addresses in CIDR form, IPv4 or IPv6
	// ("198.51.100.2/24", "2001:db8::2/64"). Each adds an on-link route.
	Addrs []string
}

// Options configure a Stack.
type Options struct {
	NICs []NICOptions
	// Gateways are default gateways, at most one IPv4 and one IPv6. Each
	// must be on-link for one of the NICs' prefixes.
	Gateways []string
	// Clock drives every timer of the stack; nil means the real clock.
	Clock tcpip.Clock
	// Seed seeds every random choice netstack makes (TCP initial sequence
	// numbers, ephemeral ports, IP IDs, NDP/DAD jitter). Zero picks a random
	// seed; set it (with a simulated clock and link) for reproducible runs.
	Seed int64
}

// Stack is a netstack stack with its NICs.
type Stack struct {
	ns    *tcpipstack.Stack
	nics  []tcpip.NICID
	links []tcpipstack.LinkEndpoint
	seed  int64
	clock tcpip.Clock
	// unbound[i] is NIC i's UnboundUDPFunc (SetUnboundUDP).
	unbound unboundHandlers

	closeOnce sync.Once
}

// New builds the stack described by opts.
func New(opts Options) (*Stack, error) {
	if len(opts.NICs) == 0 {
		return nil, errors.New("stack: no NICs given")
	}
	seed := opts.Seed
	if seed == 0 {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("stack: seeding: %w", err)
		}
		seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
	}
	clock := opts.Clock
	if clock == nil {
		clock = tcpip.NewStdClock()
	}
	var chachaSeed [32]byte
	binary.LittleEndian.PutUint64(chachaSeed[:], uint64(seed))
	ns := tcpipstack.New(tcpipstack.Options{
		NetworkProtocols: []tcpipstack.NetworkProtocolFactory{
			ipv4.NewProtocol,
			ipv6.NewProtocolWithOptions(ipv6.Options{AutoGenLinkLocal: true}),
			arp.NewProtocol,
		},
		TransportProtocols: []tcpipstack.TransportProtocolFactory{
			tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6,
		},
		Clock:      clock,
		RandSource: &lockedSource{src: rand.NewSource(seed)},
		SecureRNG:  &lockedReader{r: randv2.NewChaCha8(chachaSeed)},
	})
	s := &Stack{ns: ns, seed: seed, clock: clock, unbound: make(unboundHandlers, len(opts.NICs))}
	ns.SetTransportProtocolHandler(udp.ProtocolNumber, s.handleUnboundUDP)
	sack := tcpip.TCPSACKEnabled(true)
	if err := ns.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		ns.Destroy()
		return nil, fmt.Errorf("stack: enabling SACK: %s", err)
	}
	if err := s.addNICs(opts.NICs); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.addGateways(opts.Gateways); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stack) addNICs(nics []NICOptions) error {
	var routes []tcpip.Route
	for i, n := range nics {
		if n.Link == nil {
			return fmt.Errorf("stack: NIC %d (%q) has no link", i, n.Name)
		}
		id := tcpip.NICID(i + 1)
		if err := s.ns.CreateNICWithOptions(id, n.Link, tcpipstack.NICOptions{Name: n.Name}); err != nil {
			return fmt.Errorf("stack: creating NIC %q: %s", n.Name, err)
		}
		s.nics = append(s.nics, id)
		s.links = append(s.links, n.Link)
		for _, cidr := range n.Addrs {
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				return fmt.Errorf("stack: NIC %q: address %q is not in CIDR form (e.g. 198.51.100.2/24 or 2001:db8::2/64): %w", n.Name, cidr, err)
			}
			proto := ipv4.ProtocolNumber
			if p.Addr().Is6() && !p.Addr().Is4In6() {
				proto = ipv6.ProtocolNumber
			}
			pa := tcpip.ProtocolAddress{
				Protocol: proto,
				AddressWithPrefix: tcpip.AddressWithPrefix{
					Address:   AddrFrom(p.Addr()),
					PrefixLen: p.Bits(),
				},
			}
			if err := s.ns.AddProtocolAddress(id, pa, tcpipstack.AddressProperties{}); err != nil {
				return fmt.Errorf("stack: NIC %q: adding %s: %s", n.Name, cidr, err)
			}
			routes = append(routes, tcpip.Route{Destination: pa.AddressWithPrefix.Subnet(), NIC: id})
		}
	}
	s.ns.SetRouteTable(routes)
	return nil
}

func (s *Stack) addGateways(gateways []string) error {
	var have4, have6 bool
	for _, g := range gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return fmt.Errorf("stack: gateway %q is not an IP address: %w", g, err)
		}
		addr := AddrFrom(a)
		dest := header.IPv4EmptySubnet
		if a.Is6() && !a.Is4In6() {
			if have6 {
				return fmt.Errorf("stack: more than one IPv6 gateway (%s)", g)
			}
			have6 = true
			dest = header.IPv6EmptySubnet
		} else {
			if have4 {
				return fmt.Errorf("stack: more than one IPv4 gateway (%s)", g)
			}
			have4 = true
		}
		nic, ok := s.onLinkNIC(addr)
		if !ok {
			return fmt.Errorf("stack: gateway %s is not inside any NIC's prefix", g)
		}
		s.ns.AddRoute(tcpip.Route{Destination: dest, Gateway: addr, NIC: nic})
	}
	return nil
}

func (s *Stack) onLinkNIC(addr tcpip.Address) (tcpip.NICID, bool) {
	for _, r := range s.ns.GetRouteTable() {
		if r.Gateway.Len() == 0 && r.Destination.Prefix() > 0 && r.Destination.Contains(addr) {
			return r.NIC, true
		}
	}
	return 0, false
}

// Netstack returns the underlying netstack stack.
func (s *Stack) Netstack() *tcpipstack.Stack { return s.ns }

// NICID returns the netstack NIC ID of the i-th NIC given in Options.
func (s *Stack) NICID(i int) tcpip.NICID { return s.nics[i] }

// Link returns the link endpoint of the i-th NIC.
func (s *Stack) Link(i int) tcpipstack.LinkEndpoint { return s.links[i] }

// NumNICs returns how many NICs the stack has (Options.NICs).
func (s *Stack) NumNICs() int { return len(s.links) }

// Seed returns the seed in use (the one picked when Options.Seed was zero).
func (s *Stack) Seed() int64 { return s.seed }

// Clock returns the stack's clock.
func (s *Stack) Clock() tcpip.Clock { return s.clock }

// Settle returns once netstack's TCP processor goroutines have finished all
// the work queued to them. The simulated network runs it after every event.
func (s *Stack) Settle() {
	s.ns.Pause()
	s.ns.Resume()
}

// Close aborts every endpoint, removes the NICs (closing their links) and
// waits for every goroutine the stack and its links started.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		// netstack's Destroy waits for each link before it closes it, which
		// never returns for a link whose reader is blocked on its device
		// (tap, raw). Close the links first (each removes its NIC), then
		// wait for them.
		for _, l := range s.links {
			l.Close()
		}
		s.ns.Destroy()
		for _, l := range s.links {
			l.Wait()
		}
	})
}

// DialTCP connects to raddr.
func (s *Stack) DialTCP(ctx context.Context, raddr netip.AddrPort) (*gonet.TCPConn, error) {
	return gonet.DialContextTCP(ctx, s.ns, FullAddress(raddr), protocolOf(raddr.Addr()))
}

// ListenTCP listens on laddr (an unspecified address listens on all).
func (s *Stack) ListenTCP(laddr netip.AddrPort) (*gonet.TCPListener, error) {
	return gonet.ListenTCP(s.ns, FullAddress(laddr), protocolOf(laddr.Addr()))
}

// ListenUDP opens a UDP socket bound to laddr.
func (s *Stack) ListenUDP(laddr netip.AddrPort) (*gonet.UDPConn, error) {
	fa := FullAddress(laddr)
	return gonet.DialUDP(s.ns, &fa, nil, protocolOf(laddr.Addr()))
}

// DialUDP opens a UDP socket connected to raddr, bound to laddr when laddr is
// valid.
func (s *Stack) DialUDP(laddr, raddr netip.AddrPort) (*gonet.UDPConn, error) {
	ra := FullAddress(raddr)
	var la *tcpip.FullAddress
	if laddr.IsValid() {
		fa := FullAddress(laddr)
		la = &fa
	}
	return gonet.DialUDP(s.ns, la, &ra, protocolOf(raddr.Addr()))
}

// AddrFrom converts a netip.Addr to a tcpip.Address (IPv4-mapped IPv6
// addresses become IPv4). The zero Addr gives the empty address.
func AddrFrom(a netip.Addr) tcpip.Address { return tcpipaddr.From(a) }

// AddrTo converts a tcpip.Address to a netip.Addr.
func AddrTo(a tcpip.Address) netip.Addr { return tcpipaddr.To(a) }

// FullAddress converts ap to a netstack address (any NIC).
func FullAddress(ap netip.AddrPort) tcpip.FullAddress { return tcpipaddr.FullAddress(ap) }

func protocolOf(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is6() && !a.Is4In6() {
		return ipv6.ProtocolNumber
	}
	return ipv4.ProtocolNumber
}

// lockedSource makes a math/rand Source safe for netstack's concurrent use.
type lockedSource struct {
	mu  sync.Mutex
	src rand.Source
}

func (l *lockedSource) Int63() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.src.Int63()
}

func (l *lockedSource) Seed(seed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.src.Seed(seed)
}

// lockedReader serialises reads of a deterministic byte stream.
type lockedReader struct {
	mu sync.Mutex
	r  *randv2.ChaCha8
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
