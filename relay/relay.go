// Package relay forwards RTP/RTCP between media ports on mediastack's fast
// paths: relays that join two local ports (what arrives on A goes out of B
// to B's peer, and back), and a reflector that sends every datagram back
// to its source from the port it arrived on. It is the engine of
// `mediastack serve --reflect --relay A:B --control ADDR`, and Handler
// serves its HTTP+JSON control API.
//
// Forwarding runs to completion on the link's receive goroutine: the ports
// are opened with mediaport.Manager.OpenFunc, so a datagram goes from the
// receive hook straight into the other port's fast send, with no buffer, no
// goroutine hop and no allocation (docs/design.md shows that path).
//
// # Peers
//
// A relay side's peer, where datagrams leaving that side go, is fixed when
// the relay is made, or latched from the first datagram the side receives
// (symmetric RTP, as media relays behind NATs do): a terminal that sends
// from the address it receives on needs no signalling of its address.
// Either way, datagrams arriving from any other source are dropped and
// counted, so a third party cannot inject media into a call; datagrams for
// a side whose peer is not known yet are dropped and counted too.
//
// # Reflector
//
// With Options.Reflect, every port of the manager's range that no relay
// holds reflects; making a relay takes its ports from the reflector and
// deleting it gives them back.
package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/mediaport"
)

// Errors of Create and Delete (wrapped with details; test with errors.Is).
var (
	ErrInvalid  = errors.New("relay: invalid relay")
	ErrInUse    = errors.New("relay: port in use")
	ErrRange    = errors.New("relay: port outside the media port range")
	ErrNotFound = errors.New("relay: no such relay")
	ErrClosed   = errors.New("relay: service closed")
)

// Options configure a Service.
type Options struct {
	// Manager opens the ports. Required.
	Manager *mediaport.Manager
	// Reflect makes every port of the range that no relay holds send what
	// it receives back to its source.
	Reflect bool
	// Log, when set, gets a line per relay created or deleted.
	Log *slog.Logger
}

// Service runs relays, and the reflector, on one Manager's ports.
type Service struct {
	m       *mediaport.Manager
	reflect bool
	log     *slog.Logger

	mu         sync.Mutex
	relays     map[string]*Relay
	held       map[uint16]*Relay          // ports relays hold
	reflectors map[uint16]*mediaport.Port // ports reflecting
	nextID     uint64
	closed     bool

	reflected, reflectedBytes, reflectErrors atomic.Uint64
	// Counts of relays deleted since, so totals only grow.
	retired Counters
}

// New returns a Service; with opts.Reflect it opens every free port of the
// range as a reflector.
func New(opts Options) (*Service, error) {
	if opts.Manager == nil {
		return nil, errors.New("relay: Options.Manager is nil")
	}
	s := &Service{
		m:          opts.Manager,
		reflect:    opts.Reflect,
		log:        opts.Log,
		relays:     make(map[string]*Relay),
		held:       make(map[uint16]*Relay),
		reflectors: make(map[uint16]*mediaport.Port),
	}
	if s.reflect {
		lo, hi := s.m.PortRange()
		s.mu.Lock()
		defer s.mu.Unlock()
		for port := int(lo); port <= int(hi); port++ {
			// A port something else opened on the manager is not ours
			// to reflect on.
			if err := s.reflectLocked(uint16(port)); err != nil && !errors.Is(err, mediaport.ErrPortInUse) {
				s.closeLocked()
				return nil, err
			}
		}
	}
	return s, nil
}

// reflectLocked opens port as a reflector.
func (s *Service) reflectLocked(port uint16) error {
	p, err := s.m.OpenFunc(port, func(p *mediaport.Port, d *fastfilter.Datagram) {
		if _, err := p.WriteToUDPAddrPort(d.Payload, d.Src); err != nil {
			s.reflectErrors.Add(1)
			return
		}
		s.reflected.Add(1)
		s.reflectedBytes.Add(uint64(len(d.Payload)))
	})
	if err != nil {
		return err
	}
	s.reflectors[port] = p
	return nil
}

// Close deletes every relay and stops the reflector. The Manager stays
// open.
func (s *Service) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
}

func (s *Service) closeLocked() {
	s.closed = true
	for _, r := range s.relays {
		r.close()
	}
	clear(s.relays)
	clear(s.held)
	for _, p := range s.reflectors {
		p.Close()
	}
	clear(s.reflectors)
}

// Spec describes a relay to make.
type Spec struct {
	// Ports are the relay's two local ports, A and B.
	Ports [2]uint16
	// Peers are where each side sends: Peers[0] gets what arrives on B
	// (out of A), Peers[1] what arrives on A (out of B). A zero AddrPort
	// latches the side's peer from the first datagram it receives.
	Peers [2]netip.AddrPort
}

// Create makes a relay. Its ports must be inside the range and held by no
// other relay nor by anything else than the reflector.
func (s *Service) Create(spec Spec) (*Relay, error) {
	a, b := spec.Ports[0], spec.Ports[1]
	if a == b {
		return nil, fmt.Errorf("%w: ports[0] and ports[1] are both %d; a relay joins two different ports", ErrInvalid, a)
	}
	lo, hi := s.m.PortRange()
	for i, port := range spec.Ports {
		if !s.m.Contains(port) {
			return nil, fmt.Errorf("%w %d-%d: ports[%d] is %d", ErrRange, lo, hi, i, port)
		}
	}
	for i, peer := range spec.Peers {
		if peer.IsValid() && (peer.Port() == 0 || !peer.Addr().IsValid() || peer.Addr().IsUnspecified() || peer.Addr().IsMulticast()) {
			return nil, fmt.Errorf("%w: peers[%d] %s is not a unicast address and port", ErrInvalid, i, peer)
		}
		if a := peer.Addr(); a.Is4In6() {
			spec.Peers[i] = netip.AddrPortFrom(a.Unmap(), peer.Port())
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	for i, port := range spec.Ports {
		if other := s.held[port]; other != nil {
			return nil, fmt.Errorf("%w: ports[%d] %d belongs to relay %s", ErrInUse, i, port, other.id)
		}
	}
	// Take the ports from the reflector; give them back if the relay
	// cannot be made.
	var taken []uint16
	for _, port := range spec.Ports {
		if p := s.reflectors[port]; p != nil {
			p.Close()
			delete(s.reflectors, port)
			taken = append(taken, port)
		}
	}
	s.nextID++
	r := &Relay{id: strconv.FormatUint(s.nextID, 10)}
	for i := range r.sides {
		r.sides[i].fixed = spec.Peers[i].IsValid()
		if r.sides[i].fixed {
			peer := spec.Peers[i]
			r.sides[i].peer.Store(&peer)
		}
	}
	for i, port := range spec.Ports {
		p, err := s.m.OpenFunc(port, func(_ *mediaport.Port, d *fastfilter.Datagram) { r.forward(i, d) })
		if err != nil {
			r.close()
			for _, port := range taken {
				_ = s.reflectLocked(port)
			}
			if errors.Is(err, mediaport.ErrPortInUse) {
				return nil, fmt.Errorf("%w: ports[%d] %d: %w", ErrInUse, i, port, err)
			}
			return nil, err
		}
		r.sides[i].port.Store(p)
	}
	s.relays[r.id] = r
	for _, port := range spec.Ports {
		s.held[port] = r
	}
	if s.log != nil {
		s.log.Info("relay created", "id", r.id, "ports", spec.Ports, "peers", r.Info().JSON().Peers)
	}
	return r, nil
}

// Delete removes a relay and returns its final state; with the reflector
// on, its ports reflect again.
func (s *Service) Delete(id string) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.relays[id]
	if r == nil {
		return Info{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	r.close()
	info := r.Info()
	delete(s.relays, id)
	for _, side := range info.Sides {
		delete(s.held, side.Port)
		s.retired = s.retired.add(side.Counters)
		if s.reflect {
			_ = s.reflectLocked(side.Port)
		}
	}
	if s.log != nil {
		s.log.Info("relay deleted", "id", id, "ports", info.Ports)
	}
	return info, nil
}

// Get returns one relay's state.
func (s *Service) Get(id string) (Info, bool) {
	s.mu.Lock()
	r := s.relays[id]
	s.mu.Unlock()
	if r == nil {
		return Info{}, false
	}
	return r.Info(), true
}

// List returns every relay's state, oldest first.
func (s *Service) List() []Info {
	s.mu.Lock()
	rs := make([]*Relay, 0, len(s.relays))
	for _, r := range s.relays {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	slices.SortFunc(rs, func(a, b *Relay) int { return cmpID(a.id, b.id) })
	out := make([]Info, len(rs))
	for i, r := range rs {
		out[i] = r.Info()
	}
	return out
}

// cmpID orders decimal IDs numerically.
func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Stats are the service's totals, for metrics. Counts only grow.
type Stats struct {
	Relays     int // relays now
	Reflecting int // ports reflecting now
	// Relayed sums every relay side's counters, deleted relays included.
	Relayed Counters
	// Reflected counts datagrams sent back by the reflector, and bytes;
	// ReflectErrors those it could not send.
	Reflected, ReflectedBytes, ReflectErrors uint64
}

// Stats returns the service's totals.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	st := Stats{Relays: len(s.relays), Reflecting: len(s.reflectors), Relayed: s.retired}
	for _, r := range s.relays {
		for i := range r.sides {
			st.Relayed = st.Relayed.add(r.sides[i].counters())
		}
	}
	s.mu.Unlock()
	st.Reflected, st.ReflectedBytes, st.ReflectErrors = s.reflected.Load(), s.reflectedBytes.Load(), s.reflectErrors.Load()
	return st
}

// Relay joins two media ports.
type Relay struct {
	id    string
	sides [2]side
}

// side is one port of a relay and its peer.
type side struct {
	port  atomic.Pointer[mediaport.Port]
	peer  atomic.Pointer[netip.AddrPort] // nil until latched
	fixed bool

	rxPackets, rxBytes, txPackets, txBytes atomic.Uint64
	noPeer, foreign, sendErrors            atomic.Uint64
}

// ID returns the relay's ID.
func (r *Relay) ID() string { return r.id }

// forward handles a datagram that arrived on side i: it checks or latches
// the source as side i's peer and sends the payload out of the other side
// to that side's peer. It runs on the receive goroutine.
func (r *Relay) forward(i int, d *fastfilter.Datagram) {
	in, out := &r.sides[i], &r.sides[1-i]
	if peer := in.peer.Load(); peer == nil {
		src := d.Src
		if !in.peer.CompareAndSwap(nil, &src) && *in.peer.Load() != d.Src {
			in.foreign.Add(1)
			return
		}
	} else if *peer != d.Src {
		in.foreign.Add(1)
		return
	}
	in.rxPackets.Add(1)
	in.rxBytes.Add(uint64(len(d.Payload)))
	dst, p := out.peer.Load(), out.port.Load()
	if dst == nil || p == nil {
		out.noPeer.Add(1)
		return
	}
	if _, err := p.WriteToUDPAddrPort(d.Payload, *dst); err != nil {
		out.sendErrors.Add(1)
		return
	}
	out.txPackets.Add(1)
	out.txBytes.Add(uint64(len(d.Payload)))
}

func (r *Relay) close() {
	for i := range r.sides {
		if p := r.sides[i].port.Load(); p != nil {
			p.Close()
		}
	}
}

// Counters count what a relay side did.
type Counters struct {
	// Received: datagrams (and bytes) from the side's peer, arriving on its port.
	ReceivedPackets, ReceivedBytes uint64
	// Sent: datagrams (and bytes) sent from the side's port to its peer.
	SentPackets, SentBytes uint64
	// NoPeer: datagrams for the side dropped because its peer was not
	// latched yet. ForeignSource: datagrams arriving from a source other
	// than the side's peer, dropped. SendErrors: sends that failed.
	NoPeer, ForeignSource, SendErrors uint64
}

func (c Counters) add(o Counters) Counters {
	c.ReceivedPackets += o.ReceivedPackets
	c.ReceivedBytes += o.ReceivedBytes
	c.SentPackets += o.SentPackets
	c.SentBytes += o.SentBytes
	c.NoPeer += o.NoPeer
	c.ForeignSource += o.ForeignSource
	c.SendErrors += o.SendErrors
	return c
}

func (sd *side) counters() Counters {
	return Counters{
		ReceivedPackets: sd.rxPackets.Load(), ReceivedBytes: sd.rxBytes.Load(),
		SentPackets: sd.txPackets.Load(), SentBytes: sd.txBytes.Load(),
		NoPeer: sd.noPeer.Load(), ForeignSource: sd.foreign.Load(), SendErrors: sd.sendErrors.Load(),
	}
}

// Info is a snapshot of a relay.
type Info struct {
	ID    string
	Ports [2]uint16
	// Peers are the sides' peers now: fixed, latched, or the zero
	// AddrPort when not latched yet.
	Peers [2]netip.AddrPort
	Sides [2]SideInfo
}

// SideInfo is one side of a relay.
type SideInfo struct {
	Port  uint16
	Peer  netip.AddrPort
	Fixed bool // the peer was given; else it is latched
	Counters
}

// Info returns the relay's state.
func (r *Relay) Info() Info {
	info := Info{ID: r.id}
	for i := range r.sides {
		sd := &r.sides[i]
		si := SideInfo{Fixed: sd.fixed, Counters: sd.counters()}
		if p := sd.port.Load(); p != nil {
			si.Port = p.Port()
		}
		if peer := sd.peer.Load(); peer != nil {
			si.Peer = *peer
		}
		info.Sides[i], info.Ports[i], info.Peers[i] = si, si.Port, si.Peer
	}
	return info
}
