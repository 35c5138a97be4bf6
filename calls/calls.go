// Package calls is the call model of the ng protocol (package ng) on top of
// package relay: a SIP proxy's offer and answer become relays, one per m=
// line of the SDP, and the SDP each party receives points at them.
//
// A call has a call-id and two monologues, the parties, named by their SIP
// tags: the first offerer's (the From-tag of the INVITE) and the
// answerer's (the To-tag). Each relayed m= line is one relay.Relay whose
// side 0 faces the first offerer and side 1 the answerer, with RTCP on the
// odd port after each side's RTP port, or on the RTP port with rtcp-mux.
//
//   - Offer creates the call, allocates a port pair per side for every m=
//     line, takes the offerer's SDP addresses as its side's expected peers,
//     and returns the offer rewritten for the answerer: c= lines, m= ports,
//     a=rtcp and a=rtcp-mux name the answerer's side of the relays
//     (docs/research/rtpengine-ng.md §3 has rtpengine's rules, which it
//     follows). An offer on a call that exists (a re-INVITE or UPDATE,
//     from either party) updates the relays in place: same ports, new
//     peers; m= lines added get new relays, removed or rejected ones free
//     theirs.
//   - Answer sets the answerer's peers and returns the answer rewritten for
//     the offerer.
//   - Delete ends the call and returns its final statistics; Query returns
//     them while it runs; List and Stats serve monitoring.
//
// A relay that ends by itself (relay.Options.OnEnd: a timeout) takes its
// m= line out of the call; a call with no relay left is removed. Wire it
// with Registry.RelayEnded:
//
//	var reg atomic.Pointer[calls.Registry]
//	svc, _ := relay.New(relay.Options{Manager: m, OnEnd: func(i relay.Info, r relay.EndReason) {
//		if c := reg.Load(); c != nil { c.RelayEnded(i, r) }
//	}})
//	c, _ := calls.New(calls.Options{Relays: svc, Addrs: stackAddrs})
//	reg.Store(c)
//
// A Registry bounds the calls it holds (Options.MaxCalls) and the m= lines
// of one call (Options.MaxMedia), checked before anything is allocated; a
// request that fails leaves nothing behind.
package calls

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mediastack/mediastack/relay"
)

// Errors of the Registry's requests (wrapped with details; test with
// errors.Is). Package ng turns them into rtpengine's error-reason texts.
var (
	ErrUnknownCall  = errors.New("calls: unknown call-id")
	ErrTags         = errors.New("calls: tags do not match the call")
	ErrSDP          = errors.New("calls: bad SDP")
	ErrNoMedia      = errors.New("calls: SDP has no media")
	ErrTooManyMedia = errors.New("calls: too many media sections")
	ErrTooManyCalls = errors.New("calls: call limit reached")
	ErrNoPorts      = errors.New("calls: ran out of ports")
	ErrFamily       = errors.New("calls: no media address of that family")
	ErrMissing      = errors.New("calls: missing parameter")
	ErrClosed       = errors.New("calls: registry closed")
)

// Defaults of Options.
const (
	DefaultMaxCalls = 10000
	DefaultMaxMedia = 32
)

// Options configure a Registry.
type Options struct {
	// Relays carries the media. Required.
	Relays *relay.Service
	// Addrs are the media addresses written into SDP, at most one IPv4 and
	// one IPv6: the stack's addresses the relays' ports are on. Required.
	Addrs []netip.Addr
	// MaxCalls bounds the calls at once (default DefaultMaxCalls); an offer
	// beyond it fails with ErrTooManyCalls.
	MaxCalls int
	// MaxMedia bounds the m= lines of one call (default DefaultMaxMedia).
	MaxMedia int
	// Learning is the endpoint learning of calls that do not ask for one;
	// StrictSource makes every call's relays strict (a request may ask for
	// it too).
	Learning     relay.Learning
	StrictSource bool
	// Now is the clock of created and last-signal times (default
	// time.Now).
	Now func() time.Time
	// Log, when set, gets a line per call created, deleted or ended.
	Log *slog.Logger
}

// Registry holds the calls. Its methods are safe for concurrent use.
type Registry struct {
	relays   *relay.Service
	addr4    netip.Addr
	addr6    netip.Addr
	maxCalls int
	maxMedia int
	learning relay.Learning
	strict   bool
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex
	calls   map[string]*call
	byRelay map[string]*call // relay ID → its call
	closed  bool
	totals  Totals
}

// Totals count what a Registry did since it started.
type Totals struct {
	// Created counts calls created by an offer; Deleted those deleted by
	// a request; TimedOut, SilentTimedOut and FinalTimedOut those that
	// ended because their relays did (relay.EndReason).
	Created, Deleted, TimedOut, SilentTimedOut, FinalTimedOut uint64
	// Rejected counts offers refused for limits or ports.
	Rejected uint64
	// Offers, Answers and Deletes count the requests that succeeded.
	Offers, Answers, Deletes uint64
}

// New returns a Registry.
func New(opts Options) (*Registry, error) {
	if opts.Relays == nil {
		return nil, errors.New("calls: Options.Relays is nil")
	}
	r := &Registry{
		relays:   opts.Relays,
		maxCalls: opts.MaxCalls,
		maxMedia: opts.MaxMedia,
		learning: opts.Learning,
		strict:   opts.StrictSource,
		now:      opts.Now,
		log:      opts.Log,
		calls:    make(map[string]*call),
		byRelay:  make(map[string]*call),
	}
	for _, a := range opts.Addrs {
		a = a.Unmap()
		switch {
		case !a.IsValid() || a.IsUnspecified() || a.IsMulticast():
			return nil, fmt.Errorf("calls: media address %s is not a unicast address", a)
		case a.Is4() && !r.addr4.IsValid():
			r.addr4 = a
		case a.Is6() && !r.addr6.IsValid():
			r.addr6 = a
		default:
			return nil, fmt.Errorf("calls: two media addresses of one family (%s); give at most one IPv4 and one IPv6", a)
		}
	}
	if !r.addr4.IsValid() && !r.addr6.IsValid() {
		return nil, errors.New("calls: Options.Addrs is empty")
	}
	if r.maxCalls <= 0 {
		r.maxCalls = DefaultMaxCalls
	}
	if r.maxMedia <= 0 {
		r.maxMedia = DefaultMaxMedia
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// call is one call: its parties and its media.
type call struct {
	id         string
	created    time.Time
	lastSignal time.Time
	// parties[0] made the first offer; parties[1] answered it (its tag is
	// empty until then).
	parties [2]party
	medias  []*media
}

// party is one monologue: a SIP tag and what it was last sent.
type party struct {
	tag     string
	label   string
	created time.Time
	// family is the address family of the SDPs it is sent: that of its
	// own SDP, unless a request asks for another.
	family family
	// version and sent make o= versions: the first SDP it is sent keeps the
	// version its peer wrote; the version goes up by one whenever what it
	// is sent changes (RFC 3264 §8).
	version uint64
	sent    uint64 // hash of the last SDP it was sent; 0 = none yet
}

// media is one m= line and its relay.
type media struct {
	index      int // 1-based, as rtpengine counts
	typ, proto string
	relay      *relay.Relay // nil: rejected (port 0) or not relayed
	// sides holds what each party's SDP said of this m= line: side i is
	// parties[i], relay side i.
	sides [2]mediaSide
	// muxOverride: the answer does not decide rtcp-mux toward the offerer
	// (rtpengine's RTCP_MUX_OVERRIDE); requireMux: the offer told the
	// answerer to mux without a fallback port.
	muxOverride, requireMux bool
	// relayMux is the rtcp-mux the relay applies to each side: settled by
	// the answer.
	relayMux [2]bool
	// ptime is the last a=ptime either party gave: rtpengine tells it to
	// both (an answer without one gets the offer's).
	ptime string
}

type mediaSide struct {
	peer, rtcpPeer netip.AddrPort // from its SDP; zero when not known
	mux            bool           // it multiplexes RTCP (as negotiated so far)
	silent         bool           // its SDP says it does not send
	filled         bool           // its SDP was seen
}

// family is an address family of the SDP a party is sent.
type family uint8

const (
	familyAuto family = iota
	familyIPv4
	familyIPv6
)

// ParseFamily parses an ng "address family" value: IP4 or IP6 (or "" for
// none).
func ParseFamily(s string) (family, error) {
	switch s {
	case "":
		return familyAuto, nil
	case "IP4":
		return familyIPv4, nil
	case "IP6":
		return familyIPv6, nil
	}
	return familyAuto, fmt.Errorf("address family %q is neither IP4 nor IP6", s)
}

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return familyIPv4
	}
	return familyIPv6
}

// RTCPMux are the rtcp-mux requests of an offer (rtpengine's "rtcp-mux"
// list).
type RTCPMux struct {
	// Offer offers rtcp-mux to the answerer even if the offerer did not;
	// Require offers it without a fallback RTCP port; Demux does not offer
	// it to the answerer but accepts it toward the offerer; Accept accepts
	// it toward the offerer whatever the answerer says; Reject refuses it.
	Offer, Require, Demux, Accept, Reject bool
}

// Params are an offer's or an answer's parameters, the ng keys of the same
// names.
type Params struct {
	CallID, FromTag, ToTag string
	SDP                    []byte
	// Replace: rewrite o= (origin), the session c= even when every m= has
	// its own (session-connection), and zero addresses (zero-address).
	ReplaceOrigin, ReplaceSessionConnection, ReplaceZeroAddress bool
	RTCPMux                                                     RTCPMux
	// Family is the address family the recipient is sent ("address
	// family"); MediaAddress replaces the media address written ("media
	// address").
	Family       family
	MediaAddress netip.Addr
	// ReceivedFrom is where the SIP message came from; with
	// SIPSourceAddress it replaces the SDP's addresses (not with ICE).
	ReceivedFrom     netip.Addr
	SIPSourceAddress bool
	// FullRTCPAttribute writes a=rtcp:PORT IN IP4 ADDR; NoRTCPAttribute
	// writes none; OriginalSendrecv keeps the direction attributes.
	FullRTCPAttribute, NoRTCPAttribute, OriginalSendrecv bool
	// Learning overrides Options.Learning when LearningSet.
	Learning     relay.Learning
	LearningSet  bool
	StrictSource bool
	Label        string
	// TransportProtocol is the m= protocol the recipient must get: the
	// relay passes payloads through, so only the protocol offered (or
	// "accept") works.
	TransportProtocol string
}

// Result is what an offer or an answer gives back.
type Result struct {
	SDP []byte
}

// Offer handles an SDP offer (see the package doc).
func (r *Registry) Offer(p Params) (Result, error) {
	in, err := r.parse(p, false)
	if err != nil {
		return Result{}, err
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Result{}, ErrClosed
	}
	c := r.calls[p.CallID]
	fresh := c == nil
	var from int
	if fresh {
		if len(r.calls) >= r.maxCalls {
			r.totals.Rejected++
			return Result{}, fmt.Errorf("%w: %d calls", ErrTooManyCalls, len(r.calls))
		}
		c = &call{id: p.CallID, created: now}
		c.parties[0] = party{tag: p.FromTag, created: now}
	} else if from, err = c.partyOf(p.FromTag, p.ToTag); err != nil {
		return Result{}, err
	}
	to := 1 - from
	if len(in.medias) > r.maxMedia {
		return Result{}, fmt.Errorf("%w: %d", ErrTooManyMedia, len(in.medias))
	}
	// Allocate first: a request that runs out of ports changes nothing.
	created, err := r.createRelays(c, in, from, p)
	if err != nil {
		r.totals.Rejected++
		return Result{}, err
	}
	c.lastSignal = now
	c.parties[from].label = cmpOr(p.Label, c.parties[from].label)
	if c.parties[to].created.IsZero() {
		c.parties[to] = party{tag: p.ToTag, created: now}
	}
	r.updateMedia(c, in, from, p, created, true)
	out, err := r.rewriteFor(c, in, to, p, true)
	if err != nil {
		// Only an SDP pion cannot write back gets here.
		if fresh {
			r.removeLocked(c)
		}
		return Result{}, err
	}
	if fresh {
		r.calls[c.id] = c
		r.totals.Created++
		if r.log != nil {
			r.log.Info("call created", "call_id", c.id, "from_tag", p.FromTag, "media", len(c.medias))
		}
	}
	r.totals.Offers++
	return Result{SDP: out}, nil
}

// Answer handles an SDP answer: FromTag is the offerer's, ToTag the
// answerer's, as in the SIP dialog.
func (r *Registry) Answer(p Params) (Result, error) {
	in, err := r.parse(p, true)
	if err != nil {
		return Result{}, err
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls[p.CallID]
	if c == nil {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownCall, p.CallID)
	}
	offerer, err := c.partyOf(p.FromTag, "")
	if err != nil {
		return Result{}, err
	}
	answerer := 1 - offerer
	if len(in.medias) > len(c.medias) {
		return Result{}, fmt.Errorf("%w: the answer has %d m= lines, the offer %d", ErrSDP, len(in.medias), len(c.medias))
	}
	if t := c.parties[answerer].tag; t != p.ToTag {
		// The first answer names the answerer; a later one with another
		// tag is another fork of the INVITE, which takes over the call.
		if t != "" && r.log != nil {
			r.log.Info("call answered by another fork", "call_id", c.id, "old_tag", t, "to_tag", p.ToTag)
		}
		c.parties[answerer].tag = p.ToTag
	}
	c.lastSignal = now
	c.parties[answerer].label = cmpOr(p.Label, c.parties[answerer].label)
	r.updateMedia(c, in, answerer, p, nil, false)
	out, err := r.rewriteFor(c, in, offerer, p, false)
	if err != nil {
		return Result{}, err
	}
	r.totals.Answers++
	return Result{SDP: out}, nil
}

// parse checks an offer's or an answer's parameters, parses its SDP and
// checks that the relay can carry it.
func (r *Registry) parse(p Params, answer bool) (*sdpIn, error) {
	if err := r.check(&p, answer); err != nil {
		return nil, err
	}
	in, err := parseSDP(p.SDP, r.maxMedia)
	if err != nil {
		return nil, err
	}
	if tp := p.TransportProtocol; tp != "" && tp != "accept" {
		for i, m := range in.medias {
			if m.relayed && m.proto != tp {
				return nil, fmt.Errorf("%w: media %d is %s; converting it to %s is not supported (the relay passes payloads through)", ErrSDP, i+1, m.proto, tp)
			}
		}
	}
	return in, nil
}

func (r *Registry) check(p *Params, answer bool) error {
	if p.Family != familyAuto && !p.MediaAddress.IsValid() {
		if _, err := r.mediaAddr(p.Family, true); err != nil {
			return err
		}
	}
	switch {
	case p.CallID == "":
		return fmt.Errorf("%w: call-id", ErrMissing)
	case p.FromTag == "":
		return fmt.Errorf("%w: from-tag", ErrMissing)
	case answer && p.ToTag == "":
		return fmt.Errorf("%w: to-tag", ErrMissing)
	case len(p.SDP) == 0:
		return fmt.Errorf("%w: sdp", ErrMissing)
	}
	return nil
}

// partyOf returns the index of the party with tag from; to, when given,
// must be the other party's tag (or the other party not yet tagged).
func (c *call) partyOf(from, to string) (int, error) {
	for i := range c.parties {
		if c.parties[i].tag == from && from != "" {
			if o := c.parties[1-i].tag; to != "" && o != "" && o != to {
				break
			}
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: call %q has tags %q and %q, the request from-tag %q to-tag %q",
		ErrTags, c.id, c.parties[0].tag, c.parties[1].tag, from, to)
}

// createRelays makes a relay for every relayed m= line of an offer that has
// none yet; on failure it deletes those it made.
func (r *Registry) createRelays(c *call, in *sdpIn, from int, p Params) (map[int]*relay.Relay, error) {
	made := map[int]*relay.Relay{}
	for i := range in.medias {
		m := &in.medias[i]
		if !m.relayed || (i < len(c.medias) && c.medias[i].relay != nil) {
			continue
		}
		spec := relay.Spec{
			ClockRates:   m.clockRates,
			RTCP:         m.rtp,
			Learning:     r.learning,
			StrictSource: p.StrictSource || r.strict,
			Label:        fmt.Sprintf("call-id=%s from-tag=%s m=%d", c.id, p.FromTag, i+1),
		}
		if p.LearningSet {
			spec.Learning = p.Learning
		}
		spec.Peers[from], spec.RTCPPeers[from] = r.peers(m, p)
		spec.Silent[from] = m.silent()
		rl, err := r.relays.Create(spec)
		if err != nil {
			for _, rl := range made {
				_, _ = r.relays.Delete(rl.ID())
			}
			if errors.Is(err, relay.ErrExhausted) {
				return nil, fmt.Errorf("%w: %v", ErrNoPorts, err)
			}
			return nil, err
		}
		made[i] = rl
	}
	return made, nil
}

// peers are where a party's m= line receives RTP and RTCP: its SDP's
// addresses (the SIP source's with SIPSourceAddress), zero on hold.
func (r *Registry) peers(m *mediaIn, p Params) (rtp, rtcp netip.AddrPort) {
	if m.hold() {
		return netip.AddrPort{}, netip.AddrPort{}
	}
	rtp, rtcp = m.peer(), m.rtcpPeer()
	if p.SIPSourceAddress && p.ReceivedFrom.IsValid() && !m.ice {
		src := p.ReceivedFrom.Unmap()
		rtp = netip.AddrPortFrom(src, rtp.Port())
		if rtcp.IsValid() {
			rtcp = netip.AddrPortFrom(src, rtcp.Port())
		}
	}
	return rtp, rtcp
}

// updateMedia records what party from's SDP says of each m= line and
// sets the relays' peers; made are the relays createRelays made for an
// offer.
func (r *Registry) updateMedia(c *call, in *sdpIn, from int, p Params, made map[int]*relay.Relay, offer bool) {
	to := 1 - from
	for i := range in.medias {
		if in.medias[i].relayed && !in.medias[i].hold() {
			c.parties[from].family = familyOf(in.medias[i].addr)
			break
		}
	}
	if c.parties[to].family == familyAuto {
		c.parties[to].family = c.parties[from].family
	}
	if p.Family != familyAuto {
		c.parties[to].family = p.Family
	}
	if offer {
		// m= lines the re-offer dropped free their relays.
		for _, gone := range c.medias[min(len(in.medias), len(c.medias)):] {
			r.dropRelay(c, gone)
		}
		c.medias = c.medias[:min(len(in.medias), len(c.medias))]
	}
	for i := range in.medias {
		m := &in.medias[i]
		if i == len(c.medias) {
			c.medias = append(c.medias, &media{index: i + 1})
		}
		cm := c.medias[i]
		cm.typ, cm.proto = m.typ, m.proto
		if rl := made[i]; rl != nil {
			cm.relay = rl
			r.byRelay[rl.ID()] = c
		}
		if !m.relayed || cm.relay == nil {
			// Rejected, not relayed, or relayed in an answer to an m=
			// line the offer rejected: passed through.
			r.dropRelay(c, cm)
			cm.sides[from] = mediaSide{}
			m.relayed = false
			continue
		}
		if m.ptime != "" {
			cm.ptime = m.ptime
		}
		s := &cm.sides[from]
		s.peer, s.rtcpPeer = r.peers(m, p)
		s.silent = m.silent()
		_ = cm.relay.SetSilent(from, s.silent)
		s.filled = true
		if offer {
			cm.muxLogicOffer(m.mux, from, p.RTCPMux)
			// rtcp-mux is not settled before the answer: the relay keeps
			// what it had.
			_ = cm.relay.SetPeer(from, s.peer, s.rtcpPeer, cm.relayMux[from])
			continue
		}
		cm.muxLogicAnswer(m.mux, from)
		for side := range cm.sides {
			cm.relayMux[side] = cm.sides[side].mux
			_ = cm.relay.SetPeer(side, cm.sides[side].peer, cm.sides[side].rtcpPeer, cm.relayMux[side])
		}
	}
}

// muxLogicOffer is rtpengine's __rtcp_mux_logic for an offer (call.c):
// whether the answerer is offered rtcp-mux, and whether its answer will
// decide rtcp-mux toward the offerer.
func (cm *media) muxLogicOffer(offered bool, from int, req RTCPMux) {
	o, a := &cm.sides[from], &cm.sides[1-from]
	o.mux = offered
	cm.requireMux = req.Require
	if !a.mux {
		a.mux = o.mux
	} else {
		// The answerer muxes already: keep it, without a fallback port
		// that may be closed.
		cm.requireMux = true
	}
	if req.Offer || req.Require {
		a.mux = true
	} else if req.Demux {
		a.mux = false
	}
	cm.muxOverride = false
	switch {
	case !o.mux:
		// Not offered to us: we may offer it on, but must not accept it.
		cm.muxOverride = true
	case !a.mux:
		cm.muxOverride = true
		if req.Reject {
			o.mux = false
		}
	case req.Accept:
		cm.muxOverride = true
	case req.Reject:
		cm.muxOverride = true
		o.mux = false
	}
}

// muxLogicAnswer: the answerer's choice goes back to the offerer unless
// the offer decided otherwise.
func (cm *media) muxLogicAnswer(answered bool, from int) {
	a, o := &cm.sides[from], &cm.sides[1-from]
	a.mux = answered
	if !cm.muxOverride {
		o.mux = a.mux
	}
	cm.requireMux = false
}

// dropRelay deletes the m= line's relay, if any.
func (r *Registry) dropRelay(c *call, cm *media) {
	if cm.relay == nil {
		return
	}
	delete(r.byRelay, cm.relay.ID())
	_, _ = r.relays.Delete(cm.relay.ID())
	cm.relay = nil
}

// rewriteFor rewrites in for party to: the SDP it receives, an offer or
// an answer.
func (r *Registry) rewriteFor(c *call, in *sdpIn, to int, p Params, offer bool) ([]byte, error) {
	pt := &c.parties[to]
	addr := p.MediaAddress
	if !addr.IsValid() {
		var err error
		if addr, err = r.mediaAddr(pt.family, p.Family != familyAuto); err != nil {
			return nil, err
		}
	}
	w := rewrite{
		addr:               addr,
		replaceOrigin:      p.ReplaceOrigin,
		replaceSessionConn: p.ReplaceSessionConnection,
		replaceZero:        p.ReplaceZeroAddress,
		originalSendrecv:   p.OriginalSendrecv,
		medias:             make([]mediaOut, len(in.medias)),
	}
	switch {
	case p.NoRTCPAttribute:
		w.rtcpAttr = rtcpAttrNone
	case p.FullRTCPAttribute:
		w.rtcpAttr = rtcpAttrFull
	}
	for i := range in.medias {
		cm := c.medias[i]
		if cm.relay == nil {
			in.medias[i].relayed = false
			continue
		}
		port := cm.relay.Info().Ports[to]
		out := mediaOut{port: port, rtcpPort: port + 1, mux: cm.sides[to].mux, ptime: cm.ptime}
		// rtcp-mux settled toward this party (an answer, or an offer that
		// requires it): RTCP on the RTP port. Offered only: a fallback
		// RTCP port too, as RFC 5761 wants.
		if out.mux && (!offer || cm.requireMux) {
			out.rtcpPort = port
		}
		w.medias[i] = out
	}
	if pt.sent == 0 {
		pt.version = in.desc.Origin.SessionVersion
	}
	w.version = pt.version
	out, err := in.apply(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSDP, err)
	}
	if h := hashSDP(out); pt.sent != 0 && h != pt.sent {
		pt.version++
		in.desc.Origin.SessionVersion = pt.version
		if out, err = in.desc.Marshal(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSDP, err)
		}
		pt.sent = hashSDP(out)
	} else {
		pt.sent = h
	}
	return out, nil
}

func hashSDP(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64() | 1
}

// mediaAddr is the media address of family f; without one, the other
// family's unless the request insisted.
func (r *Registry) mediaAddr(f family, insist bool) (netip.Addr, error) {
	a, other := r.addr4, r.addr6
	if f == familyIPv6 {
		a, other = r.addr6, r.addr4
	}
	if a.IsValid() {
		return a, nil
	}
	if f == familyAuto || !insist {
		return other, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %s", ErrFamily, map[family]string{familyIPv4: "IPv4", familyIPv6: "IPv6"}[f])
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Delete ends a call and returns its statistics as they were just before.
// Without tags it deletes the call whatever its tags; with them, they must
// be the call's (either party's). A call is one dialog here, so deleting a
// party deletes the call.
func (r *Registry) Delete(callID, fromTag, toTag string) (Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls[callID]
	if c == nil {
		return Info{}, fmt.Errorf("%w: %q", ErrUnknownCall, callID)
	}
	for _, t := range []string{fromTag, toTag} {
		if t != "" && t != c.parties[0].tag && t != c.parties[1].tag {
			return Info{}, fmt.Errorf("%w: tag %q is not call %q's", ErrTags, t, callID)
		}
	}
	info := r.infoLocked(c)
	r.removeLocked(c)
	r.totals.Deleted++
	r.totals.Deletes++
	if r.log != nil {
		r.log.Info("call deleted", info.logArgs(r.now())...)
	}
	return info, nil
}

// removeLocked deletes a call's relays and forgets it.
func (r *Registry) removeLocked(c *call) {
	for _, cm := range c.medias {
		r.dropRelay(c, cm)
	}
	delete(r.calls, c.id)
}

// Query returns a call's statistics.
func (r *Registry) Query(callID string) (Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls[callID]
	if c == nil {
		return Info{}, fmt.Errorf("%w: %q", ErrUnknownCall, callID)
	}
	return r.infoLocked(c), nil
}

// List returns up to limit call-ids, oldest call first.
func (r *Registry) List(limit int) []string {
	r.mu.Lock()
	cs := make([]*call, 0, len(r.calls))
	for _, c := range r.calls {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	slices.SortFunc(cs, func(a, b *call) int {
		if d := a.created.Compare(b.created); d != 0 {
			return d
		}
		return cmpString(a.id, b.id)
	})
	ids := make([]string, 0, min(limit, len(cs)))
	for _, c := range cs[:min(limit, len(cs))] {
		ids = append(ids, c.id)
	}
	return ids
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Stats are a Registry's counts.
type Stats struct {
	Calls int // calls now
	Totals
}

// Stats returns the registry's counts.
func (r *Registry) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Calls: len(r.calls), Totals: r.totals}
}

// RelayEnded takes a relay that ended by itself out of its call, and
// removes the call when no relay is left (relay.Options.OnEnd). Relays of
// no call are ignored.
func (r *Registry) RelayEnded(info relay.Info, reason relay.EndReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.byRelay[info.ID]
	if c == nil {
		return
	}
	delete(r.byRelay, info.ID)
	live := 0
	for _, cm := range c.medias {
		if cm.relay != nil && cm.relay.ID() == info.ID {
			cm.relay = nil
		}
		if cm.relay != nil {
			live++
		}
	}
	if live > 0 && reason != relay.EndFinalTimeout {
		return
	}
	final := r.infoLocked(c)
	r.removeLocked(c)
	switch reason {
	case relay.EndSilentTimeout:
		r.totals.SilentTimedOut++
	case relay.EndFinalTimeout:
		r.totals.FinalTimedOut++
	default:
		r.totals.TimedOut++
	}
	if r.log != nil {
		r.log.Info("call ended", append(final.logArgs(r.now()), "reason", reason.String())...)
	}
}

// Close deletes every call; requests then fail with ErrClosed.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		r.removeLocked(c)
	}
	r.closed = true
}
