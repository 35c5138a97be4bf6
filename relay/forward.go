package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/relaxed"
	"github.com/mediastack/mediastack/mediaport"
)

// Relay joins two media ports (and their RTCP ports).
type Relay struct {
	s        *Service
	id       string
	label    string
	learning Learning
	strict   bool
	rtcp     bool
	// permanent relays never time out.
	permanent bool
	held      []uint16   // the ports the relay holds or reserves (Service.mu)
	rates     [32]uint32 // Spec.ClockRates
	created   int64      // service clock
	// lastSignal is when signalling last touched the relay (creation,
	// SetPeer): activity for the timeouts.
	lastSignal atomic.Int64
	sides      [2]side
}

// streamKind tells a side's two ports, and its two kinds of media, apart.
type streamKind uint8

const (
	kindRTP streamKind = iota
	kindRTCP
)

var kindNames = [2]string{"rtp", "rtcp"}

// side is one side of a relay: its ports and what it knows of its peer.
type side struct {
	// streams are the side's RTP port and RTCP port (port nil without
	// RTCP) with the peer each sends to and learns from.
	streams [2]stream
	// counters count RTP and RTCP (told apart on a Mux port).
	counters [2]counters
	mux      atomic.Bool
	silent   atomic.Bool

	// statsMu guards the RTP and RTCP statistics. The receive path only
	// tries it (TryLock): it never waits.
	statsMu      sync.Mutex
	rtp          rtpSource
	report       sideReport
	statsSkipped atomic.Uint64
}

// stream is one port of a side and the peer it sends to.
type stream struct {
	port atomic.Pointer[mediaport.Port]
	peer atomic.Pointer[peerAddr] // nil: unknown
	// lastRx is when the last datagram was accepted (service clock; 0:
	// none), stored with a release store: a stale read only makes a
	// timeout or a handover wait one packet longer.
	lastRx atomic.Uint64
	// ssrc is the SSRC the peer's last datagram carried, | 1<<32; 0
	// when it carried none.
	ssrc atomic.Uint64

	mu       sync.Mutex // learning
	expected netip.AddrPort
	given    bool // the peer was given by signalling, not learned
	cand     candidate
}

// peerAddr is where a stream sends and whether its peer is learned.
type peerAddr struct {
	addr  netip.AddrPort
	state PeerState
}

// candidate is a source that is not a stream's peer, sending.
type candidate struct {
	src     netip.AddrPort
	ssrc    uint32
	hasSSRC bool
	count   int
	first   int64
}

// counters count what a side did with one kind of media.
type counters struct {
	rxPackets, rxBytes, txPackets, txBytes atomic.Uint64
	noPeer, foreign, sendErrors            atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{
		ReceivedPackets: c.rxPackets.Load(), ReceivedBytes: c.rxBytes.Load(),
		SentPackets: c.txPackets.Load(), SentBytes: c.txBytes.Load(),
		NoPeer: c.noPeer.Load(), ForeignSource: c.foreign.Load(), SendErrors: c.sendErrors.Load(),
	}
}

// sideReport is what a side's peer said in RTCP, and the sender reports
// sent to it (for the round trip).
type sideReport struct {
	srs, rrs, malformed uint64
	sender              uint32
	hasBlock            bool
	block               reportBlock
	at                  int64
	rtt                 time.Duration
	// srSent are the last sender reports relayed to the peer: the
	// middle of their NTP time and when they left.
	srSent [2]struct {
		mid uint32
		at  int64
	}
	nextSR int
}

// ID returns the relay's ID.
func (r *Relay) ID() string { return r.id }

func (st *stream) init(expected netip.AddrPort) {
	st.expected = expected
	if expected.IsValid() {
		st.given = true
		st.peer.Store(&peerAddr{addr: expected, state: PeerExpected})
	}
}

// receive handles a datagram that arrived on side i's port k: it checks
// (or learns) the source as the side's peer, keeps the statistics, and
// sends the payload out of the other side to that side's peer. It runs on
// the receive goroutine and allocates nothing.
func (r *Relay) receive(i int, k streamKind, d *fastfilter.Datagram) {
	now := r.s.now()
	in := &r.sides[i]
	st := &in.streams[k]
	b := d.Payload
	kind := k
	if k == kindRTP && in.mux.Load() && isRTCP(b) {
		kind = kindRTCP
	}
	var ssrc uint32
	var hasSSRC bool
	if kind == kindRTCP {
		ssrc, hasSSRC = rtcpSSRC(b)
	} else {
		ssrc, hasSSRC = rtpSSRC(b)
	}
	c := &in.counters[kind]
	if ps := st.peer.Load(); ps == nil || ps.state != PeerLearned || ps.addr != d.Src {
		if !r.learn(i, k, st, d.Src, ssrc, hasSSRC, now) {
			c.foreign.Add(1)
			return
		}
	}
	relaxed.StoreRelease(&st.lastRx, uint64(now))
	if hasSSRC {
		if v := uint64(ssrc) | 1<<32; st.ssrc.Load() != v {
			st.ssrc.Store(v)
		}
	}
	c.rxPackets.Add(1)
	c.rxBytes.Add(uint64(len(b)))

	var srMid uint32
	var hasSR bool
	if in.statsMu.TryLock() {
		if kind == kindRTCP {
			srMid, hasSR = in.rtcpReceived(b, now)
		} else if hasSSRC {
			in.rtp.update(b, now, &r.rates)
		}
		in.statsMu.Unlock()
	} else {
		in.statsSkipped.Add(1)
	}

	out := &r.sides[1-i]
	dst := kindRTP
	if kind == kindRTCP && r.rtcp && !out.mux.Load() {
		dst = kindRTCP
	}
	oc := &out.counters[kind]
	ps, p := out.streams[dst].peer.Load(), out.streams[dst].port.Load()
	if ps == nil || p == nil {
		oc.noPeer.Add(1)
		return
	}
	if _, err := p.WriteToUDPAddrPort(b, ps.addr); err != nil {
		oc.sendErrors.Add(1)
		return
	}
	oc.txPackets.Add(1)
	oc.txBytes.Add(uint64(len(b)))
	if hasSR && out.statsMu.TryLock() {
		sent := &out.report.srSent[out.report.nextSR]
		sent.mid, sent.at = srMid, now
		out.report.nextSR = (out.report.nextSR + 1) % len(out.report.srSent)
		out.statsMu.Unlock()
	}
}

// rtcpReceived parses an RTCP compound from the side's peer (statsMu
// held) and returns the middle of its sender report's NTP time, if any.
func (sd *side) rtcpReceived(b []byte, now int64) (uint32, bool) {
	var rep rtcpReport
	if !parseRTCP(b, &rep) {
		sd.report.malformed++
		return 0, false
	}
	if rep.malformed {
		sd.report.malformed++
	}
	sd.report.srs += uint64(rep.srs)
	sd.report.rrs += uint64(rep.rrs)
	sd.report.sender = rep.sender
	if rep.hasBlock {
		sd.report.hasBlock, sd.report.block, sd.report.at = true, rep.block, now
		// The round trip between the relay and this peer: from when the
		// sender report it echoes left the relay to now, less the time
		// the peer held it (RFC 3550 section 6.4.1).
		if lsr := rep.block.lsr; lsr != 0 {
			for _, sent := range sd.report.srSent {
				if sent.mid == lsr && sent.at != 0 {
					rtt := time.Duration(now-sent.at) - time.Duration(int64(rep.block.dlsr)*int64(time.Second)/65536)
					if rtt >= 0 {
						sd.report.rtt = rtt
					}
				}
			}
		}
	}
	return rep.srNTPMid, rep.hasSR
}

// learning events, logged outside the stream's lock.
type learnEvent struct {
	msg      string
	from, to netip.AddrPort
	how      string
}

// learn decides whether a datagram from src, which is not side i's
// learned peer on port k, is accepted, and learns src as the peer when
// the rules of the package doc say so. It runs on the receive path, off
// its fast lane.
func (r *Relay) learn(i int, k streamKind, st *stream, src netip.AddrPort, ssrc uint32, hasSSRC bool, now int64) bool {
	st.mu.Lock()
	ev, ok := r.learnLocked(st, src, ssrc, hasSSRC, now)
	st.mu.Unlock()
	if ev.msg != "" {
		level := slog.LevelInfo
		if !ok {
			level = slog.LevelDebug
		}
		log := r.s.log
		if log.Enabled(context.Background(), level) {
			log.Log(context.Background(), level, ev.msg, "id", r.id, "label", r.label, "side", sideNames[i], "stream", kindNames[k],
				"from", addrString(ev.from), "to", addrString(ev.to), "how", ev.how)
		}
	}
	return ok
}

func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (r *Relay) learnLocked(st *stream, src netip.AddrPort, ssrc uint32, hasSSRC bool, now int64) (learnEvent, bool) {
	ps := st.peer.Load()
	learned := func(how string) (learnEvent, bool) {
		ev := learnEvent{msg: "peer learned", to: src, how: how}
		if ps != nil {
			ev.from = ps.addr
			if ps.state == PeerLearned {
				ev.msg = "peer handed over"
			}
		}
		st.peer.Store(&peerAddr{addr: src, state: PeerLearned})
		st.cand = candidate{}
		return ev, true
	}
	switch {
	case ps != nil && ps.addr == src:
		if ps.state == PeerLearned {
			return learnEvent{}, true
		}
		return learned("expected")
	case ps == nil:
		return learned("first")
	case r.learning == LearnOff:
		return st.foreign(src, ssrc, hasSSRC, now), false
	case src == st.expected:
		// The expected peer always takes its side back (from a stranger
		// immediate learning trusted, or from a learned NAT address).
		return learned("expected")
	case ps.state != PeerLearned:
		switch {
		case r.learning == LearnImmediate:
			return learned("immediate")
		case r.learning == LearnHeuristic && st.expected.IsValid() && src.Addr() == st.expected.Addr():
			return learned("heuristic")
		}
		ev := st.foreign(src, ssrc, hasSSRC, now)
		if st.cand.count >= HandoverPackets {
			return learned("consistent")
		}
		return ev, false
	case r.strict:
		return st.foreign(src, ssrc, hasSSRC, now), false
	}
	// Media handover from a learned peer.
	ev := st.foreign(src, ssrc, hasSSRC, now)
	if st.cand.count >= HandoverPackets {
		if v := st.ssrc.Load(); v != 0 {
			if st.cand.hasSSRC && st.cand.ssrc == uint32(v) {
				return learned("ssrc")
			}
		} else if time.Duration(now-int64(st.lastRx.Load())) >= HandoverSilence {
			return learned("silence")
		}
	}
	return ev, false
}

// foreign counts a datagram from src, not the peer, towards src becoming
// the candidate for the peer's place; a new candidate is logged (debug).
func (st *stream) foreign(src netip.AddrPort, ssrc uint32, hasSSRC bool, now int64) learnEvent {
	c := &st.cand
	if c.src == src && c.hasSSRC == hasSSRC && c.ssrc == ssrc && int64(st.lastRx.Load()) <= c.first {
		c.count++
		return learnEvent{}
	}
	// A new source, another stream, or the peer spoke since: start over.
	*c = candidate{src: src, ssrc: ssrc, hasSSRC: hasSSRC, count: 1, first: now}
	ev := learnEvent{msg: "dropping datagrams from a source other than the peer", from: src, how: "foreign_source"}
	if ps := st.peer.Load(); ps != nil {
		ev.to = ps.addr
	}
	return ev
}

// SetPeer sets a side's expected peers (an SDP answer, a re-INVITE, the
// HTTP API): the RTP peer, the RTCP peer (zero: the RTP peer's port+1, or
// the RTP peer itself when mux) and whether the peer multiplexes RTCP. A
// changed peer restarts learning for the side, as rtpengine does after
// each offer and answer; a zero peer keeps what the side knows. It counts
// as activity for the timeouts.
func (r *Relay) SetPeer(side int, peer, rtcpPeerAddr netip.AddrPort, mux bool) error {
	if side != 0 && side != 1 {
		return fmt.Errorf("%w: side %d (want 0 for A or 1 for B)", ErrInvalid, side)
	}
	var err error
	if peer, err = validPeer("peer", peer); err != nil {
		return err
	}
	if rtcpPeerAddr, err = validPeer("rtcp_peer", rtcpPeerAddr); err != nil {
		return err
	}
	sd := &r.sides[side]
	sd.mux.Store(mux)
	sd.streams[kindRTP].expect(peer)
	sd.streams[kindRTCP].expect(rtcpPeer(peer, rtcpPeerAddr, mux))
	r.lastSignal.Store(r.s.now())
	r.s.log.Info("relay peer set", "id", r.id, "label", r.label, "side", sideNames[side],
		"peer", addrString(peer), "rtcp_peer", addrString(rtcpPeerAddr), "mux", mux)
	return nil
}

func (st *stream) expect(e netip.AddrPort) {
	if !e.IsValid() {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if e == st.expected {
		return
	}
	st.expected, st.given, st.cand = e, true, candidate{}
	st.peer.Store(&peerAddr{addr: e, state: PeerExpected})
}

// SetSilent says whether side's peer is on hold (sends nothing): a relay
// whose sides are all silent times out after Options.SilentTimeout.
func (r *Relay) SetSilent(side int, silent bool) error {
	if side != 0 && side != 1 {
		return fmt.Errorf("%w: side %d (want 0 for A or 1 for B)", ErrInvalid, side)
	}
	if r.sides[side].silent.Swap(silent) && !silent {
		// The deadline may come sooner now.
		r.s.mu.Lock()
		if r.s.relays[r.id] == r {
			dl, _ := r.deadline(r.s.opts)
			r.s.armLocked(dl)
		}
		r.s.mu.Unlock()
	}
	return nil
}

func (r *Relay) close() {
	for i := range r.sides {
		for k := range r.sides[i].streams {
			if p := r.sides[i].streams[k].port.Load(); p != nil {
				p.Close()
			}
		}
	}
}
