// Package ng serves rtpengine's ng control protocol, so that a SIP proxy
// (Kamailio's rtpengine module, OpenSIPS's) drives mediastack's relays as it
// drives rtpengine: it sends the SDP of each offer and answer, gets it back
// rewritten to go through the relays, and deletes the call at the end.
// docs/research/rtpengine-ng.md describes the protocol as rtpengine 10.5
// and Kamailio 5.6 speak it; this package follows it.
//
// A request is one UDP datagram: a cookie, a space and a bencoded
// dictionary (internal/bencode); the reply is the same cookie, a space and
// a bencoded dictionary, sent from the socket the request came to. A
// retransmitted request (same cookie, within 30 to 60 s) gets the cached
// reply byte for byte and is not run again. Commands: ping, offer, answer,
// delete, query, list and statistics; the calls themselves are package
// calls'.
//
// Plug it in with a calls.Registry and a UDP socket on the host's network
// (the control plane, not the media stack):
//
//	srv, _ := ng.New(ng.Options{Calls: registry, Relays: svc})
//	pc, _ := net.ListenPacket("udp", "127.0.0.1:2223")
//	go srv.Serve(pc) // returns when pc is closed
//
// Bind a specific address, as rtpengine's default 127.0.0.1:2223 does:
// Kamailio's sockets are connected, and drop a reply from any other source
// address than the one they sent to.
//
// Only UDP is served: Kamailio never speaks ng over TCP
// (rtpengine-ng.md §1.4), and neither does rtpengine-ng-client. Handle
// serves one request from any transport.
package ng

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mediastack/mediastack/calls"
	"github.com/mediastack/mediastack/internal/bencode"
	"github.com/mediastack/mediastack/relay"
)

// Defaults of Options.
const (
	DefaultCacheTTL   = 30 * time.Second
	DefaultCacheBytes = 32 << 20
	// MaxDatagram is the largest request read, rtpengine's MAX_UDP_LENGTH.
	MaxDatagram = 0xffff
	// DefaultListLimit is how many call-ids list returns without a limit.
	DefaultListLimit = 32
)

// limits bound what one request's body may cost to decode: ng requests
// are flat but for a few lists and the codec dictionary.
var limits = bencode.Limits{MaxSize: MaxDatagram, MaxDepth: 8, MaxValues: 4096}

// Options configure a Server.
type Options struct {
	// Calls runs offers, answers and the rest. Required.
	Calls *calls.Registry
	// Relays, when set, gives statistics its packet counters.
	Relays *relay.Service
	// CacheTTL is how long a reply stays cached at least (default 30 s;
	// it may stay twice as long). CacheBytes bounds one cache generation
	// (default 32 MiB).
	CacheTTL   time.Duration
	CacheBytes int
	// Now is the clock of the reply cache and of uptime (default
	// time.Now).
	Now func() time.Time
	// Log gets a line per error reply (info) and per request (debug).
	Log *slog.Logger
}

// Server answers ng requests.
type Server struct {
	calls  *calls.Registry
	relays *relay.Service
	now    func() time.Time
	log    *slog.Logger
	cache  *cache
	start  time.Time

	mu      sync.Mutex
	proxies map[netip.Addr]*proxyCounts
	total   proxyCounts
}

// proxyCounts count a proxy's requests, for statistics.
type proxyCounts struct {
	commands map[string]uint64
	errors   uint64
}

// maxProxies bounds the proxies statistics tells apart; the others are
// only in the totals.
const maxProxies = 64

// New returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Calls == nil {
		return nil, errors.New("ng: Options.Calls is nil")
	}
	if opts.CacheTTL < 0 || opts.CacheBytes < 0 {
		return nil, errors.New("ng: negative CacheTTL or CacheBytes")
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		calls:   opts.Calls,
		relays:  opts.Relays,
		now:     opts.Now,
		log:     opts.Log,
		start:   opts.Now(),
		proxies: map[netip.Addr]*proxyCounts{},
		total:   proxyCounts{commands: map[string]uint64{}},
	}
	s.cache = newCache(opts.CacheTTL, opts.CacheBytes, s.start)
	return s, nil
}

// Serve answers the requests arriving on pc until it is closed; it then
// returns nil. Requests are handled one at a time, in order.
func (s *Server) Serve(pc net.PacketConn) error {
	buf := make([]byte, MaxDatagram+1)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		var src netip.Addr
		if ua, ok := from.(*net.UDPAddr); ok {
			src = ua.AddrPort().Addr().Unmap()
		}
		reply := s.Handle(src, buf[:n])
		if reply == nil {
			continue
		}
		if _, err := pc.WriteTo(reply, from); err != nil && s.log != nil {
			s.log.Info("ng reply not sent", "to", from.String(), "err", err)
		}
	}
}

// Handle answers one request datagram from the proxy at src (for
// statistics; may be zero) and returns the reply datagram, or nil for a
// datagram without a cookie, which gets none. The reply is not retained.
func (s *Server) Handle(src netip.Addr, datagram []byte) []byte {
	cookie, body, ok := bytes.Cut(datagram, []byte(" "))
	if !ok || len(cookie) == 0 {
		return nil
	}
	key := string(cookie)
	now := s.now()
	if reply, cached := s.cache.begin(key, now); cached {
		if s.log != nil {
			s.log.Debug("ng duplicate request answered from the cache", "cookie", key)
		}
		return reply
	}
	d, command := s.run(src, body)
	out := make([]byte, 0, len(cookie)+64)
	out = append(append(out, cookie...), ' ')
	out, err := bencode.Append(out, d)
	if err != nil {
		// Replies hold only encodable values; this is a bug.
		panic(fmt.Sprintf("ng: reply to %s does not encode: %v", command, err))
	}
	s.cache.end(key, out, now)
	return out
}

// run decodes and runs a request and returns its reply dictionary and
// command.
func (s *Server) run(src netip.Addr, body []byte) (bencode.Dict, string) {
	var command string
	reply, err := func() (bencode.Dict, error) {
		if len(body) > 0 && body[0] == '{' {
			return nil, errors.New("JSON requests are not supported; send bencode")
		}
		v, err := limits.Unmarshal(body)
		if err != nil {
			return nil, fmt.Errorf("Could not decode dictionary: %v", err)
		}
		d, ok := v.(bencode.Dict)
		if !ok {
			return nil, errors.New("Could not decode dictionary: the body is not a dictionary")
		}
		req := &request{d: d}
		if command, err = req.str("command"); err != nil || command == "" {
			return nil, errors.New(`Dictionary contains no key "command"`)
		}
		reply, err := s.command(command, req)
		if err == nil && len(req.warnings) > 0 {
			reply["warning"] = joinWarnings(req.warnings)
		}
		return reply, err
	}()
	s.count(src, command, err != nil)
	if err != nil {
		if s.log != nil {
			s.log.Info("ng request failed", "command", command, "from", src.String(), "err", err)
		}
		return bencode.Dict{"result": "error", "error-reason": errorReason(err)}, command
	}
	return reply, command
}

func joinWarnings(w []string) string {
	var b bytes.Buffer
	for i, s := range w {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// errorReason is the error-reason of a failed request: rtpengine's text
// where a proxy reads it (Kamailio fails over to another rtpengine on
// exactly "Ran out of ports" and "Parallel session limit reached").
func errorReason(err error) string {
	switch {
	case errors.Is(err, calls.ErrNoPorts):
		return "Ran out of ports"
	case errors.Is(err, calls.ErrTooManyCalls):
		return "Parallel session limit reached"
	case errors.Is(err, calls.ErrUnknownCall):
		return "Unknown call-id"
	}
	return err.Error()
}

// errWarning is a reply that is ok, with a warning (delete of an unknown
// call).
const notFoundWarning = "Call-ID not found or tags didn't match"

func (s *Server) command(command string, req *request) (bencode.Dict, error) {
	switch command {
	case "ping":
		return bencode.Dict{"result": "pong"}, nil
	case "offer", "answer":
		p, err := req.params()
		if err != nil {
			return nil, err
		}
		var res calls.Result
		if command == "offer" {
			res, err = s.calls.Offer(p)
		} else {
			res, err = s.calls.Answer(p)
		}
		if err != nil {
			return nil, err
		}
		return bencode.Dict{"sdp": res.SDP, "result": "ok"}, nil
	case "delete":
		return s.delete(req)
	case "query":
		callID, _, _, err := req.tags()
		if err != nil {
			return nil, err
		}
		if callID == "" {
			return nil, errors.New("No call-id in message")
		}
		info, err := s.calls.Query(callID)
		if err != nil {
			return nil, err
		}
		d := callStats(info)
		d["result"] = "ok"
		return d, nil
	case "list":
		limit, err := req.integer("limit", DefaultListLimit)
		if err != nil {
			return nil, err
		}
		if limit < 0 {
			return nil, errors.New("invalid limit, must be >= 0")
		}
		return bencode.Dict{"calls": s.calls.List(int(min(limit, 1<<20))), "result": "ok"}, nil
	case "statistics":
		return bencode.Dict{"statistics": s.statistics(), "result": "ok"}, nil
	}
	return nil, errors.New("Unrecognized command")
}

// delete: an unknown call is ok with a warning, as in rtpengine, or
// Kamailio's rtpengine_delete() fails; with the flag fatal it is an error.
func (s *Server) delete(req *request) (bencode.Dict, error) {
	callID, fromTag, toTag, err := req.tags()
	if err != nil {
		return nil, err
	}
	if callID == "" {
		return nil, errors.New("No call-id in message")
	}
	flags, err := req.list("flags")
	if err != nil {
		return nil, err
	}
	info, err := s.calls.Delete(callID, fromTag, toTag)
	if errors.Is(err, calls.ErrUnknownCall) || errors.Is(err, calls.ErrTags) {
		for _, f := range flags {
			if f == "fatal" {
				return nil, errors.New(notFoundWarning)
			}
		}
		return bencode.Dict{"warning": notFoundWarning, "result": "ok"}, nil
	}
	if err != nil {
		return nil, err
	}
	if fromTag == "" {
		// rtpengine adds statistics only to a delete by tag.
		return bencode.Dict{"result": "ok"}, nil
	}
	d := callStats(info)
	d["result"] = "ok"
	return d, nil
}

// count counts a request for statistics.
func (s *Server) count(src netip.Addr, command string, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := []*proxyCounts{&s.total}
	if p := s.proxies[src]; p != nil {
		counts = append(counts, p)
	} else if len(s.proxies) < maxProxies {
		p = &proxyCounts{commands: map[string]uint64{}}
		s.proxies[src] = p
		counts = append(counts, p)
	}
	for _, c := range counts {
		if knownCommands[command] {
			c.commands[command]++
		}
		if failed {
			c.errors++
		}
	}
}

// knownCommands are those counted by name (others only as errors).
var knownCommands = map[string]bool{"ping": true, "offer": true, "answer": true, "delete": true, "query": true, "list": true, "statistics": true}
