// Package relay forwards RTP and RTCP between media ports on mediastack's
// fast paths: relays that join two local ports (what arrives on A goes out
// of B to B's peer, and back), and a reflector that sends every datagram
// back to its source from the port it arrived on. It is the engine of
// `mediastack serve --reflect --relay A:B --control ADDR`, Handler serves
// its HTTP+JSON control API, and the ng server builds calls on it.
//
// Forwarding runs to completion on the link's receive goroutine: the ports
// are opened with mediaport.Manager.OpenFunc, so a datagram goes from the
// receive hook straight into the other port's fast send, with no buffer, no
// goroutine hop and no allocation (docs/design.md shows that path). The
// statistics are kept there too, without allocating and without waiting:
// a side's RTP and RTCP state is taken with TryLock, and a packet that
// arrives while the API is reading it (a few hundred nanoseconds) is
// relayed and counted but left out of the loss and jitter figures
// (SideInfo.StatsSkipped).
//
// # Ports
//
// Spec.Ports are the RTP ports of sides A and B; a zero port is allocated
// by the service: an even port and the odd one after it, both free (or
// reflecting), searching on from the last allocation so a port just freed
// is the last to be reused. With Spec.RTCP each side also relays RTCP on
// its RTP port + 1 (so an RTP port given must then be even). A side whose
// peer multiplexes RTCP on the RTP port (Spec.Mux, RFC 5761) has its RTCP
// told from RTP by the second octet (192-223: RTCP packet types, RTP
// payload types 64-95 with the marker bit) and counted apart; RTCP for a
// multiplexing side leaves from its RTP port. Deleting a relay frees all
// its ports, and gives them back to the reflector when it runs.
//
// # Peers and endpoint learning
//
// Each side has an expected peer from signalling (Spec.Peers, SetPeer):
// the side sends to it from the start (state "expected") and a datagram
// from it confirms it at once ("learned"). A side with no expected peer
// latches the source of the first datagram it receives (symmetric RTP);
// until then what is for it is dropped (no_peer). Datagrams from a source
// other than the side's peer are dropped (foreign_source) unless the
// learning rules below make that source the peer. RTP and RTCP ports
// learn separately; the RTCP port expects Spec.RTCPPeers[i], by default
// the RTP peer's port + 1 (RFC 3605), or the RTP port itself when Mux.
//
// The learning modes are rtpengine's --endpoint-learning names
// (docs/research/rtpengine-ng.md section 4.1), made hijack-resistant:
//
//   - off: the side stays on its expected peer; any other source is
//     dropped. (With no expected peer it latches the first source.)
//   - immediate: before the peer is learned, the first datagram's source
//     becomes the peer at once (and that datagram is relayed).
//   - delayed (the default): before the peer is learned, a source other
//     than the expected one becomes the peer once it has sent
//     HandoverPackets datagrams in a row (same SSRC, nothing from another
//     source in between): a NATed caller is learned after three packets,
//     a stranger's single datagram is not.
//   - heuristic: as delayed, except that a source with the expected
//     address (another port, as a NAT that keeps the address does) becomes
//     the peer at once.
//
// In every mode, strict source or not, the expected peer itself takes the
// side back whenever it sends, so a stranger who got in first (immediate
// learning trusts the first datagram) loses the side as soon as the real
// peer speaks.
//
// Once learned, the peer moves (media handover) only to a source that
// carries the same SSRC as the peer's stream and sends HandoverPackets
// datagrams with nothing from the old peer in between, which is what a NAT
// rebinding looks like; for a stream with no SSRC (not RTP/RTCP) the old
// peer must moreover have been silent for HandoverSilence. A packet from
// the old peer, another source or another SSRC starts the count over.
// StrictSource turns handover off: once learned, only that source (or the
// expected peer) is accepted. Unlike rtpengine, a source that is not the
// peer is never relayed (without strict source rtpengine forwards it), and
// SSRCs count (rtpengine compares addresses only): the SSRC is what tells
// the real peer behind a new NAT binding from a stranger, who does not
// know it.
//
// # Statistics
//
// Per side and kind (RTP, RTCP): packets and bytes received and sent, and
// drops by reason (no_peer, foreign_source, send_error). Per side, the RTP
// stream its peer sends (RFC 3550 A.1/A.3: extended highest sequence
// number, expected, received, cumulative loss across wraps, restarts and
// SSRC changes; A.8: inter-arrival jitter, in time from the payload
// type's clock rate: RFC 3551's for static types, Spec.ClockRates for
// dynamic ones, else unknown), and the peer's latest RTCP report: SR and
// RR counts, fraction and cumulative loss and jitter of its first report
// block, and the round trip between the relay and the peer from the
// LSR/DLSR of its reports on sender reports the relay passed to it (so
// each leg of a call has its own RTT).
//
// # Timeouts
//
// One timer serves every relay of a Service (no goroutine nor timer per
// relay; a check costs an atomic load per stream and runs only when the
// earliest deadline falls due). A relay whose streams all received
// nothing for Options.Timeout ends with EndTimeout; one whose sides are
// all Silent (on hold, SetSilent) with EndSilentTimeout after
// Options.SilentTimeout; any relay FinalTimeout after it was made, with
// EndFinalTimeout. A relay that ends is deleted, logged with its final
// counters and passed to Options.OnEnd, called outside the service's locks.
// Permanent relays (serve's --relay) never time out.
//
// # Logs
//
// With Options.Log, info lines "relay created", "peer learned", "peer
// handed over", "relay peer set", "relay timed out" and "relay deleted"
// (the last two with each side's packets, bytes, lost, jitter_ms and
// dropped), and a debug line each time a new foreign source starts being
// dropped; every line carries id and label (Spec.Label).
//
// # Beyond the API contract
//
// The contract in the brief of issue 13, with these additions: Spec.Silent
// and Relay.SetSilent (hold, for SilentTimeout), Spec.ClockRates,
// Spec.Permanent, Service.SetPeer (by ID), Options.Learning and
// StrictSource (the HTTP API's defaults), a negative Timeout or
// SilentTimeout for never, EndReason values for Delete and Close too, and
// SideInfo.RTCP counters beside the RTP ones rather than inside them.
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
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/mediaport"
)

// Errors of Create, SetPeer and Delete (wrapped with details; test with
// errors.Is).
var (
	ErrInvalid   = errors.New("relay: invalid relay")
	ErrInUse     = errors.New("relay: port in use")
	ErrRange     = errors.New("relay: port outside the media port range")
	ErrExhausted = errors.New("relay: no free port pair")
	ErrNotFound  = errors.New("relay: no such relay")
	ErrClosed    = errors.New("relay: service closed")
)

// Media handover and delayed learning (the package doc has the rules).
const (
	// HandoverPackets is how many datagrams in a row a new source sends
	// before it becomes a side's peer.
	HandoverPackets = 3
	// HandoverSilence is how long the old peer of a stream without SSRC
	// must be silent before a new source takes over.
	HandoverSilence = time.Second
)

// Default timeouts, rtpengine's.
const (
	DefaultTimeout       = 60 * time.Second
	DefaultSilentTimeout = 3600 * time.Second
)

// Options configure a Service.
type Options struct {
	// Manager opens the ports. Required.
	Manager *mediaport.Manager
	// Reflect makes every port of the range that no relay holds send what
	// it receives back to its source.
	Reflect bool
	// Log, when set, gets a line per relay created, peer learned or
	// handed over, relay timed out or deleted (info), and per dropped
	// source (debug).
	Log *slog.Logger
	// Clock times packets and timeouts. Default: the manager's stack's.
	Clock tcpip.Clock

	// Timeout ends a relay none of whose streams received anything for
	// that long; SilentTimeout replaces it when every side is Silent.
	// Zero: DefaultTimeout and DefaultSilentTimeout; negative: never.
	Timeout, SilentTimeout time.Duration
	// FinalTimeout ends every relay that long after it was made. Zero:
	// never.
	FinalTimeout time.Duration
	// OnEnd, when set, is called with a relay's final state when it ends
	// by itself (a timeout), outside the service's locks, on the timer's
	// goroutine. It must not block for long.
	OnEnd func(info Info, reason EndReason)

	// Learning and StrictSource are the defaults the control API applies
	// to relays it creates without saying (Create takes a Spec as it is).
	Learning     Learning
	StrictSource bool
}

// Service runs relays, and the reflector, on one Manager's ports.
type Service struct {
	m     *mediaport.Manager
	opts  Options
	log   *slog.Logger
	clock tcpip.Clock
	// wallBase and monoBase convert the clock's monotonic readings, which
	// the receive path keeps, back to wall time.
	wallBase  time.Time // with the real clock, it has Go's monotonic reading
	monoBase  tcpip.MonotonicTime
	realClock bool

	mu         sync.Mutex
	relays     map[string]*Relay
	held       map[uint16]*Relay          // ports relays hold (or reserve)
	reflectors map[uint16]*mediaport.Port // ports reflecting
	nextID     uint64
	nextAlloc  uint16 // where the search for a free pair starts
	closed     bool
	timer      tcpip.Timer
	timerDue   int64 // when timer fires, in clock nanoseconds; 0: not armed

	reflected, reflectedBytes, reflectErrors atomic.Uint64
	// Counts of relays deleted since, so totals only grow.
	retired, retiredRTCP Counters
	ended                [numEndReasons]uint64
	jitterHist, lossHist Histogram
}

// New returns a Service; with opts.Reflect it opens every free port of the
// range as a reflector.
func New(opts Options) (*Service, error) {
	if opts.Manager == nil {
		return nil, errors.New("relay: Options.Manager is nil")
	}
	if opts.Learning >= numLearning {
		return nil, fmt.Errorf("relay: Options.Learning %d is not a learning mode", opts.Learning)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.SilentTimeout == 0 {
		opts.SilentTimeout = DefaultSilentTimeout
	}
	if opts.FinalTimeout < 0 {
		opts.FinalTimeout = 0
	}
	s := &Service{
		m:          opts.Manager,
		opts:       opts,
		log:        opts.Log,
		clock:      opts.Clock,
		relays:     make(map[string]*Relay),
		held:       make(map[uint16]*Relay),
		reflectors: make(map[uint16]*mediaport.Port),
		jitterHist: newHistogram(JitterBuckets),
		lossHist:   newHistogram(LossBuckets),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = s.m.Stack().Clock()
	}
	s.wallBase, s.monoBase = s.clock.Now(), s.clock.NowMonotonic()
	s.realClock = reflect.TypeOf(s.clock) == stdClockType
	s.nextAlloc, _ = s.m.PortRange()
	if s.opts.Reflect {
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

// stdClockType is the type of netstack's real clock.
var stdClockType = reflect.TypeOf(tcpip.NewStdClock())

// now returns the clock's monotonic time in nanoseconds since the service
// was made, plus 1 (0 means "never"). It runs for every packet: with the
// real clock it reads Go's monotonic clock directly (about 20 ns), as
// netstack's MonotonicTime arithmetic goes through time.Time and costs
// about 80 ns more.
func (s *Service) now() int64 {
	if s.realClock {
		return int64(time.Since(s.wallBase)) + 1
	}
	return int64(s.clock.NowMonotonic().Sub(s.monoBase)) + 1
}

// wall converts a time from now back to wall time (zero for 0).
func (s *Service) wall(t int64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return s.wallBase.Add(time.Duration(t - 1))
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
	infos := s.closeLocked()
	s.mu.Unlock()
	for _, info := range infos {
		s.logEnd(info, EndClosed)
	}
}

func (s *Service) closeLocked() []Info {
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	var infos []Info
	for _, r := range s.relays {
		infos = append(infos, s.removeLocked(r))
		s.ended[EndClosed]++
	}
	clear(s.held)
	for _, p := range s.reflectors {
		p.Close()
	}
	clear(s.reflectors)
	return infos
}

// Spec describes a relay to make.
type Spec struct {
	// Ports are the RTP ports of sides A and B; 0 = the service allocates
	// a free even/odd pair for that side.
	Ports [2]uint16
	// Peers are the expected peers of each side (from SDP or signalling):
	// Peers[0] gets what arrives on B (out of A), Peers[1] what arrives on
	// A (out of B). Zero: unknown, latched from the first datagram.
	Peers [2]netip.AddrPort
	// RTCP relays RTCP too, on port+1 of each side (port must be even).
	RTCP bool
	// Mux: side i's peer multiplexes RTCP on the RTP port (RFC 5761).
	Mux [2]bool
	// RTCPPeers are the expected RTCP peers; zero: the RTP peer's port+1
	// (RFC 3605's default), or the RTP peer itself when Mux.
	RTCPPeers [2]netip.AddrPort
	// Learning is how sides learn their peers (package doc).
	Learning Learning
	// StrictSource: once a side's peer is learned, it moves to no other
	// source (but back to the expected peer).
	StrictSource bool
	// Silent: side i's peer is not expected to send (on hold: its SDP
	// says sendonly for us... recvonly or inactive from it); the relay
	// times out after SilentTimeout when every side is Silent.
	Silent [2]bool
	// ClockRates are the RTP clock rates of the dynamic payload types
	// 96-127 (index: payload type - 96; 0: unknown), from a=rtpmap, for
	// jitter; static payload types have RFC 3551's.
	ClockRates [32]uint32
	// Label is free text for logs (ng puts the call-id and tags here).
	Label string
	// Permanent relays never time out (serve's --relay: they live as long
	// as the process).
	Permanent bool
}

// validPeer checks a peer: zero, or a unicast address and port; it
// returns it with an IPv4-mapped address unmapped.
func validPeer(what string, peer netip.AddrPort) (netip.AddrPort, error) {
	if !peer.IsValid() {
		return netip.AddrPort{}, nil
	}
	if a := peer.Addr(); peer.Port() == 0 || !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return peer, fmt.Errorf("%w: %s %s is not a unicast address and port", ErrInvalid, what, peer)
	}
	return netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port()), nil
}

// Create makes a relay. Its ports must be inside the range and held by no
// other relay nor by anything else than the reflector; zero ports are
// allocated.
func (s *Service) Create(spec Spec) (*Relay, error) {
	a, b := spec.Ports[0], spec.Ports[1]
	if a == b && a != 0 {
		return nil, fmt.Errorf("%w: ports[0] and ports[1] are both %d; a relay joins two different ports", ErrInvalid, a)
	}
	if spec.Learning >= numLearning {
		return nil, fmt.Errorf("%w: learning %d is not a learning mode", ErrInvalid, spec.Learning)
	}
	lo, hi := s.m.PortRange()
	for i, port := range spec.Ports {
		if port == 0 {
			continue
		}
		if !s.m.Contains(port) {
			return nil, fmt.Errorf("%w %d-%d: ports[%d] is %d", ErrRange, lo, hi, i, port)
		}
		if spec.RTCP {
			if port%2 != 0 {
				return nil, fmt.Errorf("%w: ports[%d] %d is odd; with RTCP, RTP takes an even port and RTCP the one after it", ErrInvalid, i, port)
			}
			if !s.m.Contains(port + 1) {
				return nil, fmt.Errorf("%w %d-%d: ports[%d] %d has no RTCP port %d in the range", ErrRange, lo, hi, i, port, port+1)
			}
		}
	}
	if spec.RTCP && a != 0 && b != 0 && (a+1 == b || b+1 == a) {
		return nil, fmt.Errorf("%w: ports %d and %d overlap with their RTCP ports", ErrInvalid, a, b)
	}
	var err error
	for i := range spec.Peers {
		if spec.Peers[i], err = validPeer(fmt.Sprintf("peers[%d]", i), spec.Peers[i]); err != nil {
			return nil, err
		}
		if spec.RTCPPeers[i], err = validPeer(fmt.Sprintf("rtcp_peers[%d]", i), spec.RTCPPeers[i]); err != nil {
			return nil, err
		}
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	r, err := s.createLocked(spec)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	info := r.Info()
	s.log.Info("relay created", "id", r.id, "label", r.label, "ports", info.Ports,
		"rtcp_ports", [2]uint16{info.Sides[0].RTCPPort, info.Sides[1].RTCPPort},
		"peers", info.JSON().Peers, "learning", spec.Learning.String(), "strict_source", spec.StrictSource)
	return r, nil
}

func (s *Service) createLocked(spec Spec) (*Relay, error) {
	for i, port := range spec.Ports {
		for _, p := range s.portsOf(spec, port) {
			if other := s.held[p]; other != nil {
				return nil, fmt.Errorf("%w: ports[%d] %d belongs to relay %s", ErrInUse, i, p, other.id)
			}
		}
	}
	s.nextID++
	r := &Relay{
		s: s, id: strconv.FormatUint(s.nextID, 10), label: spec.Label,
		learning: spec.Learning, strict: spec.StrictSource, rtcp: spec.RTCP, permanent: spec.Permanent,
		rates: spec.ClockRates, created: s.now(),
	}
	// Take the ports from the reflector, or allocate them; give them
	// back if the relay cannot be made.
	var reserved []uint16
	undo := func() {
		r.close()
		for _, p := range reserved {
			delete(s.held, p)
			if s.opts.Reflect {
				_ = s.reflectLocked(p)
			}
		}
	}
	for i := range spec.Ports {
		sd := &r.sides[i]
		sd.mux.Store(spec.Mux[i])
		sd.silent.Store(spec.Silent[i])
		sd.streams[kindRTP].init(spec.Peers[i])
		sd.streams[kindRTCP].init(rtcpPeer(spec.Peers[i], spec.RTCPPeers[i], spec.Mux[i]))
		var err error
		if spec.Ports[i] == 0 {
			err = s.allocLocked(r, i, &reserved)
		} else {
			err = s.openSideLocked(r, i, spec.Ports[i], &reserved)
		}
		if err != nil {
			undo()
			return nil, err
		}
	}
	r.lastSignal.Store(r.created)
	r.held = reserved
	s.relays[r.id] = r
	dl, _ := r.deadline(s.opts)
	s.armLocked(dl)
	return r, nil
}

// portsOf lists the ports a side on port takes (its RTCP port too).
func (s *Service) portsOf(spec Spec, port uint16) []uint16 {
	if port == 0 {
		return nil
	}
	if spec.RTCP {
		return []uint16{port, port + 1}
	}
	return []uint16{port}
}

// openSideLocked opens side i of r on port (and port+1 with RTCP), taking
// them from the reflector; each port it holds is appended to reserved.
func (s *Service) openSideLocked(r *Relay, i int, port uint16, reserved *[]uint16) error {
	kinds := []streamKind{kindRTP}
	if r.rtcp {
		kinds = append(kinds, kindRTCP)
	}
	for _, k := range kinds {
		p := port + uint16(k)
		if rp := s.reflectors[p]; rp != nil {
			rp.Close()
			delete(s.reflectors, p)
		}
		pt, err := s.m.OpenFunc(p, func(_ *mediaport.Port, d *fastfilter.Datagram) { r.receive(i, k, d) })
		if err != nil {
			if s.opts.Reflect && errors.Is(err, mediaport.ErrPortInUse) {
				// Not ours: it was not reflecting either.
			} else if s.opts.Reflect {
				_ = s.reflectLocked(p)
			}
			if errors.Is(err, mediaport.ErrPortInUse) {
				return fmt.Errorf("%w: ports[%d] %d: %w", ErrInUse, i, p, err)
			}
			return err
		}
		s.held[p] = r
		*reserved = append(*reserved, p)
		r.sides[i].streams[k].port.Store(pt)
	}
	return nil
}

// allocLocked finds side i of r a free even/odd pair (free: held by no
// relay, and free on the manager or reflecting) and opens it. The odd
// port is reserved even without RTCP, so an RTCP relay can be added
// beside it and allocation keeps to pairs.
func (s *Service) allocLocked(r *Relay, i int, reserved *[]uint16) error {
	lo, hi := s.m.PortRange()
	first := lo + lo%2
	if hi < first+1 {
		return fmt.Errorf("%w in %d-%d", ErrExhausted, lo, hi)
	}
	n := int(hi-first+1) / 2
	start := s.nextAlloc
	if start < first || start+1 > hi {
		start = first
	}
	start -= (start - first) % 2
	for k := 0; k < n; k++ {
		port := first + uint16((int(start-first)/2+k)%n*2)
		if s.held[port] != nil || s.held[port+1] != nil {
			continue
		}
		n0 := len(*reserved)
		if err := s.openSideLocked(r, i, port, reserved); err != nil {
			// Someone else's port: undo this pair and try the next.
			for _, p := range (*reserved)[n0:] {
				if pt := r.sides[i].streams[(p-port)%2].port.Swap(nil); pt != nil {
					pt.Close()
				}
				delete(s.held, p)
				if s.opts.Reflect {
					_ = s.reflectLocked(p)
				}
			}
			*reserved = (*reserved)[:n0]
			continue
		}
		if !r.rtcp {
			s.held[port+1] = r
			*reserved = append(*reserved, port+1)
		}
		s.nextAlloc = port + 2
		return nil
	}
	return fmt.Errorf("%w: no free even/odd port pair in %d-%d", ErrExhausted, lo, hi)
}

// rtcpPeer is the RTCP peer expected of a side whose RTP peer is rtp.
func rtcpPeer(rtp, rtcp netip.AddrPort, mux bool) netip.AddrPort {
	switch {
	case rtcp.IsValid():
		return rtcp
	case !rtp.IsValid():
		return netip.AddrPort{}
	case mux:
		return rtp
	case rtp.Port() == 65535:
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
}

// Delete removes a relay and returns its final state; with the reflector
// on, its ports reflect again.
func (s *Service) Delete(id string) (Info, error) {
	s.mu.Lock()
	r := s.relays[id]
	if r == nil {
		s.mu.Unlock()
		return Info{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	info := s.removeLocked(r)
	s.ended[EndDeleted]++
	s.mu.Unlock()
	s.logEnd(info, EndDeleted)
	return info, nil
}

// removeLocked closes r, frees its ports and folds its counters into the
// service's.
func (s *Service) removeLocked(r *Relay) Info {
	r.close()
	info := r.Info()
	delete(s.relays, r.id)
	for _, port := range r.held {
		delete(s.held, port)
		if s.opts.Reflect && !s.closed {
			_ = s.reflectLocked(port)
		}
	}
	for _, side := range info.Sides {
		s.retired = s.retired.add(side.Counters)
		s.retiredRTCP = s.retiredRTCP.add(side.RTCP)
		if side.Stream.Expected > 0 {
			s.lossHist.observe(side.Stream.LossRatio())
		}
		if side.Stream.ClockRate != 0 && side.Stream.Received > 0 {
			s.jitterHist.observe(side.Stream.Jitter.Seconds())
		}
	}
	return info
}

// logEnd logs a relay's end with its final counters.
func (s *Service) logEnd(info Info, reason EndReason) {
	msg := "relay deleted"
	if reason != EndDeleted && reason != EndClosed {
		msg = "relay timed out"
	}
	args := []any{"id", info.ID, "label", info.Label, "reason", reason.String(), "ports", info.Ports}
	for i, sd := range info.Sides {
		args = append(args, slog.Group(sideNames[i],
			"packets", sd.ReceivedPackets, "bytes", sd.ReceivedBytes,
			"rtcp_packets", sd.RTCP.ReceivedPackets,
			"lost", sd.Stream.Lost, "jitter_ms", sd.Stream.Jitter.Seconds()*1000,
			"dropped", sd.NoPeer+sd.ForeignSource+sd.SendErrors+sd.RTCP.NoPeer+sd.RTCP.ForeignSource+sd.RTCP.SendErrors))
	}
	s.log.Info(msg, args...)
}

var sideNames = [2]string{"a", "b"}

// SetPeer sets side's expected peers (an SDP answer, a re-INVITE, the
// HTTP API): the RTP peer, the RTCP peer (zero: as Spec.RTCPPeers) and
// whether the peer multiplexes RTCP. A changed peer restarts learning for
// that side, as rtpengine does after each offer and answer; a zero peer
// keeps what the side knows. It counts as activity for the timeouts.
func (s *Service) SetPeer(id string, side int, peer, rtcpPeer netip.AddrPort, mux bool) error {
	s.mu.Lock()
	r := s.relays[id]
	s.mu.Unlock()
	if r == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return r.SetPeer(side, peer, rtcpPeer, mux)
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
	// Relayed sums every relay side's counters of RTP (and of whatever
	// else arrives on RTP ports), deleted relays included; RelayedRTCP
	// those of RTCP.
	Relayed, RelayedRTCP Counters
	// Reflected counts datagrams sent back by the reflector, and bytes;
	// ReflectErrors those it could not send.
	Reflected, ReflectedBytes, ReflectErrors uint64
	// Ended counts relays that ended, by EndReason.
	Ended [numEndReasons]uint64
	// Jitter (seconds) and Loss (ratio lost/expected) of each relay
	// side's RTP stream, observed when the relay ends.
	Jitter, Loss Histogram
}

// Stats returns the service's totals.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Relays: len(s.relays), Reflecting: len(s.reflectors), Relayed: s.retired, RelayedRTCP: s.retiredRTCP,
		Ended: s.ended, Jitter: s.jitterHist.clone(), Loss: s.lossHist.clone(),
	}
	for _, r := range s.relays {
		for i := range r.sides {
			st.Relayed = st.Relayed.add(r.sides[i].counters[kindRTP].snapshot())
			st.RelayedRTCP = st.RelayedRTCP.add(r.sides[i].counters[kindRTCP].snapshot())
		}
	}
	s.mu.Unlock()
	st.Reflected, st.ReflectedBytes, st.ReflectErrors = s.reflected.Load(), s.reflectedBytes.Load(), s.reflectErrors.Load()
	return st
}
