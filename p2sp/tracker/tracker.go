// Package tracker is the P2SP file-info server's peer list: an HTTP
// BitTorrent tracker (BEP 3 announce, BEP 23 compact peers, BEP 7 peers6)
// with an in-memory store.
//
// Only registered infohashes are tracked (the origin registers each file it
// publishes with P2P info); an announce for any other gets a bencoded
// "failure reason", as does a malformed query. A peer is keyed by infohash
// and peer id and listed at the request's source address (the "ip"
// parameter is ignored, so a client cannot point the swarm at someone else)
// and the port it announced. It expires when it has not announced for twice
// the announce interval, or at once with event=stopped. An answer never
// lists the requester, holds at most numwant peers (default 50), compact
// unless the request says compact=0.
//
// Plug it in:
//
//	t := tracker.New(tracker.Options{})
//	t.Register(infohash)
//	mux.Handle("GET /announce", t)
//
// Announces are answered with HTTP 200 and a bencoded body, failures too
// (clients read the failure reason from the body).
package tracker

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// Options configures a Tracker; zero values take the defaults.
type Options struct {
	// Interval is the announce interval the tracker asks for (default
	// 60 s); a peer silent for twice that expires.
	Interval time.Duration
	// MinInterval is the shortest announce interval (default Interval/6).
	MinInterval time.Duration
	// DefaultNumWant is how many peers an announce without numwant gets
	// (default 50); MaxNumWant caps numwant (default 200).
	DefaultNumWant, MaxNumWant int
	// MaxPeers caps a swarm's peers (default 10000): announces of new peers
	// beyond it fail, so a flood of made-up peer ids cannot grow the store.
	MaxPeers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Tracker is an http.Handler for GET /announce.
type Tracker struct {
	opts Options

	mu     sync.Mutex
	swarms map[metainfo.Hash]map[string]*peer // by infohash, then peer id
	stats  Stats
}

type peer struct {
	id       string
	addr     netip.AddrPort
	seed     bool
	lastSeen time.Time
}

// Stats counts what the tracker answered.
type Stats struct {
	Announces int64 // answered with a peer list
	Failures  int64 // answered with a failure reason
}

// New returns a tracker with no registered infohash.
func New(o Options) *Tracker {
	if o.Interval <= 0 {
		o.Interval = 60 * time.Second
	}
	if o.MinInterval <= 0 {
		o.MinInterval = o.Interval / 6
	}
	if o.DefaultNumWant <= 0 {
		o.DefaultNumWant = 50
	}
	if o.MaxNumWant <= 0 {
		o.MaxNumWant = 200
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Tracker{opts: o, swarms: map[metainfo.Hash]map[string]*peer{}}
}

// Register starts tracking infohash ih.
func (t *Tracker) Register(ih metainfo.Hash) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.swarms[ih] == nil {
		t.swarms[ih] = map[string]*peer{}
	}
}

// Unregister stops tracking ih and forgets its peers.
func (t *Tracker) Unregister(ih metainfo.Hash) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.swarms, ih)
}

// Peers lists ih's live peers.
func (t *Tracker) Peers(ih metainfo.Hash) []netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []netip.AddrPort
	for _, p := range t.live(t.swarms[ih]) {
		out = append(out, p.addr)
	}
	return out
}

// Stats returns the counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Event is an announce's event parameter.
type Event string

const (
	EventNone      Event = ""
	EventStarted   Event = "started"
	EventCompleted Event = "completed"
	EventStopped   Event = "stopped"
)

// Announce is a parsed announce request.
type Announce struct {
	InfoHash metainfo.Hash
	PeerID   string // 20 bytes
	Addr     netip.AddrPort
	Left     int64 // -1 when absent
	Event    Event
	Compact  bool
	NoPeerID bool
	NumWant  int // -1 when absent
}

// ParseAnnounce parses an announce's raw query; the peer's address is
// remote's IP with the announced port.
func ParseAnnounce(rawQuery string, remote netip.Addr) (Announce, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Announce{}, fmt.Errorf("malformed query: %v", err)
	}
	a := Announce{Left: -1, NumWant: -1, Compact: true}
	one := func(name string) (string, bool, error) {
		v, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(v) != 1 {
			return "", true, fmt.Errorf("%s given %d times", name, len(v))
		}
		return v[0], true, nil
	}
	ih, ok, err := one("info_hash")
	if err != nil {
		return a, err
	}
	if !ok || len(ih) != 20 {
		return a, fmt.Errorf("info_hash: want 20 bytes")
	}
	copy(a.InfoHash[:], ih)
	if a.PeerID, ok, err = one("peer_id"); err != nil {
		return a, err
	}
	if !ok || len(a.PeerID) != 20 {
		return a, fmt.Errorf("peer_id: want 20 bytes")
	}
	port, ok, err := one("port")
	if err != nil {
		return a, err
	}
	p, perr := strconv.ParseUint(port, 10, 16)
	if !ok || perr != nil || p == 0 {
		return a, fmt.Errorf("port: want 1-65535")
	}
	if !remote.IsValid() {
		return a, fmt.Errorf("no source address")
	}
	a.Addr = netip.AddrPortFrom(remote.Unmap().WithZone(""), uint16(p))
	for _, n := range []struct {
		name string
		dst  *int64
	}{{"left", &a.Left}, {"uploaded", new(int64)}, {"downloaded", new(int64)}} {
		v, ok, err := one(n.name)
		if err != nil {
			return a, err
		}
		if !ok {
			continue
		}
		if *n.dst, err = strconv.ParseInt(v, 10, 64); err != nil || *n.dst < 0 {
			return a, fmt.Errorf("%s: want a count of bytes", n.name)
		}
	}
	ev, _, err := one("event")
	if err != nil {
		return a, err
	}
	switch a.Event = Event(ev); a.Event {
	case EventNone, EventStarted, EventCompleted, EventStopped, "empty":
		if a.Event == "empty" {
			a.Event = EventNone
		}
	default:
		return a, fmt.Errorf("event %q: want started, completed or stopped", ev)
	}
	if v, ok, err := one("compact"); err != nil {
		return a, err
	} else if ok {
		a.Compact = v != "0"
	}
	if v, ok, err := one("no_peer_id"); err != nil {
		return a, err
	} else if ok {
		a.NoPeerID = v == "1"
	}
	if v, ok, err := one("numwant"); err != nil {
		return a, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return a, fmt.Errorf("numwant: want a count")
		}
		a.NumWant = n
	}
	return a, nil
}

// ServeHTTP answers an announce.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	remote, _ := netip.ParseAddrPort(r.RemoteAddr)
	a, err := ParseAnnounce(r.URL.RawQuery, remote.Addr())
	if err != nil {
		t.fail(w, err.Error())
		return
	}
	body, err := t.announce(a)
	if err != nil {
		t.fail(w, err.Error())
		return
	}
	write(w, body)
}

func (t *Tracker) fail(w http.ResponseWriter, reason string) {
	t.mu.Lock()
	t.stats.Failures++
	t.mu.Unlock()
	body, _ := bencode.Marshal(map[string]string{"failure reason": reason})
	write(w, body)
}

func write(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

type peerDict struct {
	PeerID string `bencode:"peer id,omitempty"`
	IP     string `bencode:"ip"`
	Port   uint16 `bencode:"port"`
}

// announce records a and returns the bencoded answer.
func (t *Tracker) announce(a Announce) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	swarm, ok := t.swarms[a.InfoHash]
	if !ok {
		return nil, fmt.Errorf("unknown info_hash %s", a.InfoHash.HexString())
	}
	now := t.opts.Now()
	t.live(swarm) // drop the expired before counting against MaxPeers
	if a.Event == EventStopped {
		delete(swarm, a.PeerID)
	} else {
		p := swarm[a.PeerID]
		if p == nil {
			if len(swarm) >= t.opts.MaxPeers {
				return nil, fmt.Errorf("swarm full (%d peers)", len(swarm))
			}
			p = &peer{id: a.PeerID}
			swarm[a.PeerID] = p
		}
		p.addr, p.lastSeen = a.Addr, now
		p.seed = a.Left == 0 || a.Event == EventCompleted
	}
	peers := t.live(swarm)
	numWant := a.NumWant
	if numWant < 0 {
		numWant = t.opts.DefaultNumWant
	}
	numWant = min(numWant, t.opts.MaxNumWant)
	var complete, incomplete int
	var v4, v6 bytes.Buffer
	var list []peerDict
	// Start at a random peer so that a large swarm is shared out.
	start := 0
	if len(peers) > 1 {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(peers))))
		start = int(n.Int64())
	}
	given := 0
	for i := range peers {
		p := peers[(start+i)%len(peers)]
		if p.seed {
			complete++
		} else {
			incomplete++
		}
		if p.id == a.PeerID || p.addr == a.Addr || given == numWant {
			continue
		}
		given++
		switch {
		case !a.Compact:
			d := peerDict{IP: p.addr.Addr().String(), Port: p.addr.Port()}
			if !a.NoPeerID {
				d.PeerID = p.id
			}
			list = append(list, d)
		case p.addr.Addr().Is4():
			ip := p.addr.Addr().As4()
			v4.Write(ip[:])
			v4.Write(binary.BigEndian.AppendUint16(nil, p.addr.Port()))
		default:
			ip := p.addr.Addr().As16()
			v6.Write(ip[:])
			v6.Write(binary.BigEndian.AppendUint16(nil, p.addr.Port()))
		}
	}
	t.stats.Announces++
	resp := map[string]any{
		"interval":     int64(t.opts.Interval / time.Second),
		"min interval": int64(t.opts.MinInterval / time.Second),
		"complete":     complete,
		"incomplete":   incomplete,
	}
	if a.Compact {
		resp["peers"] = v4.String()
		if v6.Len() > 0 {
			resp["peers6"] = v6.String()
		}
	} else {
		if list == nil {
			list = []peerDict{}
		}
		resp["peers"] = list
	}
	return bencode.Marshal(resp)
}

// live drops the swarm's expired peers and returns the rest.
func (t *Tracker) live(swarm map[string]*peer) []*peer {
	cutoff := t.opts.Now().Add(-2 * t.opts.Interval)
	out := make([]*peer, 0, len(swarm))
	for id, p := range swarm {
		if p.lastSeen.Before(cutoff) {
			delete(swarm, id)
			continue
		}
		out = append(out, p)
	}
	return out
}
