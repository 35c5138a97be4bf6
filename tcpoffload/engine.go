package tcpoffload

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// DefaultMaxLargePacket is the default cap on a large packet (IP header
// included): the most netstack builds and a TAP accepts, 64 KB.
const DefaultMaxLargePacket = 1 << 16

// MinMaxLargePacket is the smallest cap accepted: an IPv6 minimum-MTU
// packet, so that a capped large packet still holds a full segment.
const MinMaxLargePacket = header.IPv6MinimumMTU

// DefaultIdleTimeout is how long a session with no traffic in either
// direction stays in the table when Options.IdleTimeout is zero.
const DefaultIdleTimeout = 2 * time.Minute

// closedLinger is how long a session that saw a RST, or FINs both ways,
// stays in the table (so its final counts can still be read per session).
const closedLinger = 5 * time.Second

// Options configure an Engine.
type Options struct {
	// Mode is Soft or Vnet; Off makes New return nil (no engine).
	Mode Mode
	// MaxLargePacket is the default pacing cap: the largest packet, in bytes
	// from the IP header on, netstack builds for any session on the link
	// (its GSO maximum). 0 means DefaultMaxLargePacket. Per-session caps
	// (SetSessionCap) lower it further. See the package documentation for
	// the trade-off.
	MaxLargePacket int
	// Clock stamps the ACKs the receive hook records and ages sessions
	// (default: the real clock).
	Clock tcpip.Clock
	// IdleTimeout forgets sessions with no traffic for this long (default
	// DefaultIdleTimeout). Their counts stay in the engine's totals.
	IdleTimeout time.Duration
}

// sessionKey identifies a session: the stack's address and port, and the peer's.
type sessionKey struct {
	Local, Remote netip.AddrPort
}

func (k sessionKey) String() string { return k.Local.String() + "<->" + k.Remote.String() }

// Engine is a link's TCP offload engine: its mode, its pacing caps and its
// table of offloaded sessions. It is the link.TCPOffload of one link (see
// link.go): the link's transmit path hands it every large packet
// (AppendFrames or AppendVnet), and its receive path calls ObserveInbound
// for every inbound frame.
type Engine struct {
	mode     Mode
	maxLarge int
	clock    tcpip.Clock
	idle     time.Duration
	attached atomic.Bool

	mu        sync.RWMutex
	sessions  map[sessionKey]*session
	lastSweep tcpip.MonotonicTime
	lastACKed atomic.Pointer[session] // the session the last ACK was for

	// Counts of sessions no longer in the table, and link-level counts.
	retired           sessionCounters
	sessionsCreated   atomic.Uint64
	partialsCompleted atomic.Uint64
	unsegmentable     atomic.Uint64
	acksSeen          atomic.Uint64
}

// New validates opts and returns an Engine, or nil for Mode Off.
func New(opts Options) (*Engine, error) {
	switch opts.Mode {
	case Off:
		return nil, nil
	case Soft, Vnet:
	default:
		return nil, fmt.Errorf("tcpoffload: unknown mode %d", opts.Mode)
	}
	if opts.MaxLargePacket == 0 {
		opts.MaxLargePacket = DefaultMaxLargePacket
	}
	if opts.MaxLargePacket < MinMaxLargePacket || opts.MaxLargePacket > DefaultMaxLargePacket {
		return nil, fmt.Errorf("tcpoffload: MaxLargePacket %d out of range [%d, %d]", opts.MaxLargePacket, MinMaxLargePacket, DefaultMaxLargePacket)
	}
	if opts.Clock == nil {
		opts.Clock = tcpip.NewStdClock()
	}
	if opts.IdleTimeout < 0 {
		return nil, errors.New("tcpoffload: negative IdleTimeout")
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	return &Engine{
		mode:      opts.Mode,
		maxLarge:  opts.MaxLargePacket,
		clock:     opts.Clock,
		idle:      opts.IdleTimeout,
		sessions:  make(map[sessionKey]*session),
		lastSweep: opts.Clock.NowMonotonic(),
	}, nil
}

// Mode returns the engine's mode.
func (e *Engine) Mode() Mode { return e.mode }

// MaxLargePacket implements link.TCPOffload: the default cap, what the link
// reports to netstack as its GSO maximum. It is 0 for a nil Engine (what New
// returns for Off), which turns the link's offload off.
func (e *Engine) MaxLargePacket() int {
	if e == nil {
		return 0
	}
	return e.maxLarge
}

// Vnet implements link.TCPOffload: whether the link writes large packets
// whole behind a virtio-net header (mode Vnet).
func (e *Engine) Vnet() bool { return e != nil && e.mode == Vnet }

// Attach implements link.TCPOffload: it claims the engine for one link; a
// second claim fails. Links call it when they are built.
func (e *Engine) Attach() error {
	if !e.attached.CompareAndSwap(false, true) {
		return errors.New("tcpoffload: the engine already serves another link (make one per link)")
	}
	return nil
}

// SetSessionCap caps the large packets of one session at maxBytes (IP header
// included; 0 restores the default). The session need not exist yet: an
// application can set it right after accepting a connection, before the
// first large packet.
func (e *Engine) SetSessionCap(local, remote netip.AddrPort, maxBytes int) error {
	if maxBytes != 0 && (maxBytes < MinMaxLargePacket || maxBytes > DefaultMaxLargePacket) {
		return fmt.Errorf("tcpoffload: session cap %d out of range [%d, %d]", maxBytes, MinMaxLargePacket, DefaultMaxLargePacket)
	}
	s := e.sessionFor(sessionKey{Local: local, Remote: remote}, true)
	s.cap.Store(int32(maxBytes))
	return nil
}

// CountPartialCompleted implements link.TCPOffload: the link completed the
// checksum netstack left partial on a packet it did not hand to the kernel
// as NEEDS_CSUM.
func (e *Engine) CountPartialCompleted() { e.partialsCompleted.Add(1) }

// begin finds (or makes) the session of the large packet whose headers are
// hdr and loads hdr into the session's template. The caller then cuts or
// splits the packet with the template and calls session.sent. begin and the
// template are for the link's transmit path only, one packet at a time.
func (e *Engine) begin(hdr []byte, payloadLen, mss int) (*session, error) {
	k, err := outboundKey(hdr)
	if err != nil {
		return nil, err
	}
	s := e.sessionFor(k, true)
	if err := s.tmpl.load(hdr, payloadLen, mss); err != nil {
		return nil, err
	}
	return s, nil
}

// sessionFor returns k's session, making it when create is set.
func (e *Engine) sessionFor(k sessionKey, create bool) *session {
	e.mu.RLock()
	s := e.sessions[k]
	e.mu.RUnlock()
	if s != nil || !create {
		return s
	}
	now := e.clock.NowMonotonic()
	e.mu.Lock()
	defer e.mu.Unlock()
	if s = e.sessions[k]; s != nil {
		return s
	}
	if now.Sub(e.lastSweep) >= e.idle/4 {
		e.sweepLocked(now)
	}
	s = &session{key: k, engine: e}
	s.lastActive.Store(now.Sub(tcpip.MonotonicTime{}).Nanoseconds())
	e.sessions[k] = s
	e.sessionsCreated.Add(1)
	return s
}

// sweepLocked forgets idle and closed sessions, folding their counts into
// the totals. e.mu must be held for writing.
func (e *Engine) sweepLocked(now tcpip.MonotonicTime) {
	e.lastSweep = now
	nowNs := now.Sub(tcpip.MonotonicTime{}).Nanoseconds()
	for k, s := range e.sessions {
		idle := time.Duration(nowNs - s.lastActive.Load())
		if idle >= e.idle || (s.closed.Load() && idle >= closedLinger) {
			s.removed.Store(true)
			e.retired.add(&s.counters)
			delete(e.sessions, k)
			e.lastACKed.CompareAndSwap(s, nil)
		}
	}
}

// sweep forgets idle and closed sessions now (it also happens as sessions
// are made).
func (e *Engine) sweep() {
	now := e.clock.NowMonotonic()
	e.mu.Lock()
	e.sweepLocked(now)
	e.mu.Unlock()
}

// sessionCounters are a session's transmit counts.
type sessionCounters struct {
	largePackets atomic.Uint64
	frames       atomic.Uint64
	bytes        atomic.Uint64
	capSplits    atomic.Uint64
}

func (c *sessionCounters) add(o *sessionCounters) {
	c.largePackets.Add(o.largePackets.Load())
	c.frames.Add(o.frames.Load())
	c.bytes.Add(o.bytes.Load())
	c.capSplits.Add(o.capSplits.Load())
}

// session is one offloaded TCP connection in the engine's table.
type session struct {
	key    sessionKey
	engine *Engine
	// tmpl is the header template of the session's large packets, used by
	// the link's transmit path only.
	tmpl headerTemplate

	cap        atomic.Int32 // per-session cap (0: the engine's)
	mss        atomic.Uint32
	sndNxt     atomic.Uint32 // sequence number after the last byte sent
	lastActive atomic.Int64  // monotonic ns of the last packet either way
	closed     atomic.Bool   // RST seen, or FIN both ways
	finOut     atomic.Bool
	finIn      atomic.Bool
	removed    atomic.Bool // set under engine.mu (write lock)

	counters sessionCounters

	// What the receive hook last saw from the peer.
	acks    atomic.Uint64
	ackNum  atomic.Uint32
	window  atomic.Uint32 // the raw 16-bit window field
	tsVal   atomic.Uint32
	tsEcr   atomic.Uint32
	ackedAt atomic.Int64 // monotonic ns
}

// chunk returns how many of the payloadLen bytes of the large packet just
// loaded one write may carry under the session's cap: all of them when the
// packet fits the cap, else the most whole segments of mss that fit (at
// least one).
func (s *session) chunk(payloadLen, mss int) int {
	limit := int(s.cap.Load())
	if limit == 0 {
		limit = s.engine.maxLarge
	}
	// The cap counts from the IP header on.
	room := limit - (s.tmpl.hdrLen - header.EthernetMinimumSize)
	if payloadLen <= room {
		return payloadLen
	}
	return max(room/mss, 1) * mss
}

// sent records that the large packet loaded last, of payloadBytes cut (or
// to be cut) at mss, went out as frames segments in parts writes (more than
// one when a cap split it).
func (s *session) sent(payloadBytes, mss, frames, parts int) {
	e := s.engine
	t := &s.tmpl
	s.sndNxt.Store(t.seq + uint32(payloadBytes))
	s.mss.Store(uint32(mss))
	s.lastActive.Store(e.clock.NowMonotonic().Sub(tcpip.MonotonicTime{}).Nanoseconds())
	if t.flags&uint8(header.TCPFlagFin) != 0 {
		s.finOut.Store(true)
		if s.finIn.Load() {
			s.closed.Store(true)
		}
	}
	if t.flags&uint8(header.TCPFlagRst) != 0 {
		s.closed.Store(true)
	}
	e.mu.RLock()
	c := &s.counters
	if s.removed.Load() {
		c = &e.retired // a sweep took the session meanwhile: count in the totals
	}
	c.largePackets.Add(1)
	c.frames.Add(uint64(frames))
	c.bytes.Add(uint64(payloadBytes))
	if parts > 1 {
		c.capSplits.Add(uint64(parts - 1))
	}
	e.mu.RUnlock()
}

// SessionStats is a snapshot of one session.
type SessionStats struct {
	Local, Remote netip.AddrPort
	// LargePackets is how many large packets netstack handed over, Frames
	// how many MSS-sized segments they carry (cut by the link in Soft mode,
	// by the kernel, if at all, in Vnet mode), Bytes their TCP payload.
	LargePackets, Frames, Bytes uint64
	// CapSplits counts the extra writes the session's cap caused.
	CapSplits uint64
	// Cap is the session's own cap (0: the engine's default).
	Cap int
	// MSS is the segment size of the last large packet; SndNxt the sequence
	// number after its last byte.
	MSS    int
	SndNxt uint32
	// What the receive hook last saw from the peer: how many ACKs, the
	// acknowledgement number, the raw window field, the TCP timestamp
	// option's values (zero without one) and when (zero before any).
	ACKs          uint64
	AckNum        uint32
	Window        uint16
	TSVal, TSEcr  uint32
	LastACK       time.Duration // monotonic time since the clock's origin
	TemplateLoads uint64        // static-field rebuilds of the template
	Closed        bool
}

// InFlight returns the bytes sent and not yet acknowledged as far as the
// link has seen.
func (s SessionStats) InFlight() uint32 {
	if s.ACKs == 0 {
		return 0
	}
	return s.SndNxt - s.AckNum
}

func (s *session) stats() SessionStats {
	return SessionStats{
		Local:         s.key.Local,
		Remote:        s.key.Remote,
		LargePackets:  s.counters.largePackets.Load(),
		Frames:        s.counters.frames.Load(),
		Bytes:         s.counters.bytes.Load(),
		CapSplits:     s.counters.capSplits.Load(),
		Cap:           int(s.cap.Load()),
		MSS:           int(s.mss.Load()),
		SndNxt:        s.sndNxt.Load(),
		ACKs:          s.acks.Load(),
		AckNum:        s.ackNum.Load(),
		Window:        uint16(s.window.Load()),
		TSVal:         s.tsVal.Load(),
		TSEcr:         s.tsEcr.Load(),
		LastACK:       time.Duration(s.ackedAt.Load()),
		TemplateLoads: s.tmpl.rebuilds.Load(),
		Closed:        s.closed.Load(),
	}
}

// Sessions returns a snapshot of the sessions in the table, ordered by key.
// It takes the table's lock: call it for metrics, not per packet.
func (e *Engine) Sessions() []SessionStats {
	e.mu.RLock()
	out := make([]SessionStats, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, s.stats())
	}
	e.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := a.Local.Compare(b.Local); c != 0 {
			return c < 0
		}
		return a.Remote.Compare(b.Remote) < 0
	})
	return out
}

// Stats are an engine's totals, sessions no longer in the table included.
type Stats struct {
	Mode Mode
	// Sessions is how many sessions are in the table; SessionsCreated how
	// many were ever made.
	Sessions, SessionsCreated uint64
	LargePackets, Frames      uint64
	Bytes, CapSplits          uint64
	// PartialsCompleted counts packets whose partial checksum the link
	// completed (pure ACKs, short segments of offloaded connections).
	PartialsCompleted uint64
	// Unsegmentable counts large packets dropped because their headers
	// could not serve as a template (never seen from netstack's TCP).
	Unsegmentable uint64
	// ACKs counts inbound ACKs of offloaded sessions the hook recorded.
	ACKs uint64
}

// Stats returns the engine's totals.
func (e *Engine) Stats() Stats {
	var c sessionCounters
	e.mu.RLock()
	c.add(&e.retired)
	n := len(e.sessions)
	for _, s := range e.sessions {
		c.add(&s.counters)
	}
	e.mu.RUnlock()
	return Stats{
		Mode:              e.mode,
		Sessions:          uint64(n),
		SessionsCreated:   e.sessionsCreated.Load(),
		LargePackets:      c.largePackets.Load(),
		Frames:            c.frames.Load(),
		Bytes:             c.bytes.Load(),
		CapSplits:         c.capSplits.Load(),
		PartialsCompleted: e.partialsCompleted.Load(),
		Unsegmentable:     e.unsegmentable.Load(),
		ACKs:              e.acksSeen.Load(),
	}
}
