package tracker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	httpTracker "github.com/anacrolix/torrent/tracker/http"
	"github.com/anacrolix/torrent/tracker/shared"
	"github.com/anacrolix/torrent/types"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/p2sp/tracker"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var ih = metainfo.Hash{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}

func peerID(c byte) string { return strings.Repeat(string(c), 20) }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// response is an announce answer decoded loosely.
type response struct {
	Failure    string `bencode:"failure reason"`
	Interval   int    `bencode:"interval"`
	Complete   int    `bencode:"complete"`
	Incomplete int    `bencode:"incomplete"`
	Peers      any    `bencode:"peers"`
	Peers6     string `bencode:"peers6"`
}

// announce sends query to tr from remote and decodes the answer.
func announce(t *testing.T, tr http.Handler, remote string, q url.Values) response {
	t.Helper()
	r := httptest.NewRequest("GET", "/announce?"+q.Encode(), nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	tr.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	var resp response
	if err := bencode.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer %q: %v", w.Body.Bytes(), err)
	}
	return resp
}

func query(id string, port int, left int64, extra ...string) url.Values {
	q := url.Values{"info_hash": {string(ih[:])}, "peer_id": {id}, "port": {strconv.Itoa(port)}, "left": {strconv.FormatInt(left, 10)},
		"uploaded": {"0"}, "downloaded": {"0"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

// compactPeers decodes BEP 23/7 compact peers.
func compactPeers(s string, width int) []netip.AddrPort {
	var out []netip.AddrPort
	for b := []byte(s); len(b) >= width; b = b[width:] {
		a, _ := netip.AddrFromSlice(b[:width-2])
		out = append(out, netip.AddrPortFrom(a, uint16(b[width-2])<<8|uint16(b[width-1])))
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

func TestAnnounceListsOthers(t *testing.T) {
	tr := tracker.New(tracker.Options{})
	tr.Register(ih)
	if r := announce(t, tr, "198.51.100.1:40000", query(peerID('a'), 6881, 0, "event", "started")); len(r.Peers.(string)) != 0 || r.Complete != 1 || r.Interval != 60 {
		t.Fatalf("first announce: %+v, want no peers, 1 seed, interval 60", r)
	}
	announce(t, tr, "198.51.100.2:40000", query(peerID('b'), 6882, 100))
	announce(t, tr, "[2001:db8::3]:40000", query(peerID('c'), 6883, 100))
	r := announce(t, tr, "[::ffff:198.51.100.4]:40000", query(peerID('d'), 6884, 100, "event", "started"))
	if r.Failure != "" {
		t.Fatal(r.Failure)
	}
	want4 := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:6881"), netip.MustParseAddrPort("198.51.100.2:6882")}
	if got := compactPeers(r.Peers.(string), 6); !slices.Equal(got, want4) {
		t.Errorf("peers %v, want %v (the requester excluded)", got, want4)
	}
	if got := compactPeers(r.Peers6, 18); !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::3]:6883")}) {
		t.Errorf("peers6 %v", got)
	}
	if r.Complete != 1 || r.Incomplete != 3 {
		t.Errorf("complete %d incomplete %d, want 1 and 3", r.Complete, r.Incomplete)
	}
	// The mapped address was stored unmapped.
	if !slices.Contains(tr.Peers(ih), netip.MustParseAddrPort("198.51.100.4:6884")) {
		t.Errorf("Peers %v lacks 198.51.100.4:6884", tr.Peers(ih))
	}
}

func TestNumWantStoppedExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	tr := tracker.New(tracker.Options{Interval: 10 * time.Second, Now: clock.Now})
	tr.Register(ih)
	for i := range 5 {
		announce(t, tr, "198.51.100."+strconv.Itoa(10+i)+":1", query(peerID(byte('a'+i)), 7000+i, 5))
	}
	if r := announce(t, tr, "198.51.100.99:1", query(peerID('z'), 7999, 5, "numwant", "2")); len(compactPeers(r.Peers.(string), 6)) != 2 {
		t.Errorf("numwant=2 gave %d peers", len(compactPeers(r.Peers.(string), 6)))
	}
	if r := announce(t, tr, "198.51.100.99:1", query(peerID('z'), 7999, 5, "numwant", "0")); r.Peers.(string) != "" || r.Incomplete != 6 {
		t.Errorf("numwant=0: %+v, want no peers and 6 counted", r)
	}
	announce(t, tr, "198.51.100.10:1", query(peerID('a'), 7000, 5, "event", "stopped"))
	if n := len(tr.Peers(ih)); n != 5 {
		t.Errorf("after a stop: %d peers, want 5", n)
	}
	// Peers b-e fall silent; z and a new one announce within 2 intervals.
	clock.Advance(15 * time.Second)
	announce(t, tr, "198.51.100.99:1", query(peerID('z'), 7999, 5))
	clock.Advance(6 * time.Second)
	r := announce(t, tr, "198.51.100.50:1", query(peerID('y'), 7050, 5))
	if got := compactPeers(r.Peers.(string), 6); !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("198.51.100.99:7999")}) {
		t.Errorf("after expiry: peers %v, want only the one that announced within 20 s", got)
	}
}

func TestNotCompact(t *testing.T) {
	tr := tracker.New(tracker.Options{})
	tr.Register(ih)
	announce(t, tr, "[2001:db8::1]:1", query(peerID('a'), 6881, 0))
	r := announce(t, tr, "198.51.100.2:1", query(peerID('b'), 6882, 9, "compact", "0"))
	list, ok := r.Peers.([]any)
	if !ok || len(list) != 1 {
		t.Fatalf("peers %#v, want a list of one", r.Peers)
	}
	d := list[0].(map[string]any)
	if d["ip"] != "2001:db8::1" || d["port"] != int64(6881) || d["peer id"] != peerID('a') {
		t.Errorf("peer %v", d)
	}
	r = announce(t, tr, "198.51.100.2:1", query(peerID('b'), 6882, 9, "compact", "0", "no_peer_id", "1"))
	if _, ok := r.Peers.([]any)[0].(map[string]any)["peer id"]; ok {
		t.Errorf("no_peer_id=1 still lists peer ids")
	}
}

func TestFailures(t *testing.T) {
	tr := tracker.New(tracker.Options{MaxPeers: 2})
	tr.Register(ih)
	good := query(peerID('a'), 6881, 0)
	for _, tc := range []struct {
		name  string
		query string
		want  string
	}{
		{"empty", "", "info_hash"},
		{"short hash", "info_hash=abc&peer_id=" + peerID('a') + "&port=1", "info_hash"},
		{"unknown hash", strings.Replace(good.Encode(), "%01%02", "%09%09", 1), "unknown info_hash"},
		{"no peer id", "info_hash=" + url.QueryEscape(string(ih[:])) + "&port=1", "peer_id"},
		{"port 0", strings.Replace(good.Encode(), "port=6881", "port=0", 1), "port"},
		{"port too big", strings.Replace(good.Encode(), "port=6881", "port=70000", 1), "port"},
		{"bad event", good.Encode() + "&event=exploded", "event"},
		{"negative left", strings.Replace(good.Encode(), "left=0", "left=-4", 1), "left"},
		{"numwant junk", good.Encode() + "&numwant=lots", "numwant"},
		{"twice", good.Encode() + "&port=7", "port given 2 times"},
		{"bad escape", good.Encode() + "&x=%zz", "malformed query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/announce", nil)
			r.URL.RawQuery = tc.query
			r.RemoteAddr = "198.51.100.1:1"
			w := httptest.NewRecorder()
			tr.ServeHTTP(w, r)
			var resp response
			if err := bencode.Unmarshal(w.Body.Bytes(), &resp); err != nil || !strings.Contains(resp.Failure, tc.want) {
				t.Errorf("answer %q (%v), want a failure reason containing %q", w.Body.Bytes(), err, tc.want)
			}
		})
	}
	announce(t, tr, "198.51.100.1:1", query(peerID('a'), 1, 0))
	announce(t, tr, "198.51.100.2:1", query(peerID('b'), 1, 0))
	if r := announce(t, tr, "198.51.100.3:1", query(peerID('c'), 1, 0)); !strings.Contains(r.Failure, "swarm full") {
		t.Errorf("third peer over MaxPeers 2: %+v", r)
	}
	tr.Unregister(ih)
	if r := announce(t, tr, "198.51.100.1:1", query(peerID('a'), 1, 0)); !strings.Contains(r.Failure, "unknown") {
		t.Errorf("after Unregister: %+v", r)
	}
	if s := tr.Stats(); s.Failures != 13 || s.Announces != 2 {
		t.Errorf("stats %+v, want 13 failures and 2 announces", s)
	}
}

// TestAnacrolixClient: anacrolix/torrent's own HTTP tracker client parses
// the answers.
func TestAnacrolixClient(t *testing.T) {
	tr := tracker.New(tracker.Options{})
	tr.Register(ih)
	srv := httptest.NewServer(tr)
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/announce")
	cl := httpTracker.NewClient(u, httpTracker.NewClientOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := func(c byte, port uint16, ev shared.AnnounceEvent, hash metainfo.Hash) httpTracker.AnnounceRequest {
		var id types.PeerID
		copy(id[:], peerID(c))
		return httpTracker.AnnounceRequest{InfoHash: hash, PeerId: id, Port: port, Left: 100, Event: ev, NumWant: -1}
	}
	if _, err := cl.Announce(ctx, req('a', 6881, shared.Started, ih), httpTracker.AnnounceOpt{}); err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Announce(ctx, req('b', 6882, shared.Started, ih), httpTracker.AnnounceOpt{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 1 || resp.Peers[0].Port != 6881 || !resp.Peers[0].IP.IsLoopback() || resp.Interval != 60 || resp.Leechers != 2 {
		t.Errorf("answer %+v, want the first peer on port 6881, interval 60, 2 leechers", resp)
	}
	_, err = cl.Announce(ctx, req('c', 6883, shared.Started, metainfo.Hash{9}), httpTracker.AnnounceOpt{})
	if err == nil || !strings.Contains(err.Error(), "unknown info_hash") {
		t.Errorf("unknown infohash: %v, want the failure reason", err)
	}
	cl.Close()
}
