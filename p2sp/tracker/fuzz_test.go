package tracker_test

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/anacrolix/torrent/bencode"

	"github.com/mediastack/mediastack/p2sp/tracker"
)

// FuzzAnnounce: any query gets a bencoded dictionary with either a failure
// reason or a peer list, never a panic.
func FuzzAnnounce(f *testing.F) {
	f.Add(query(peerID('a'), 6881, 0).Encode())
	f.Add(query(peerID('a'), 6881, 0, "compact", "0", "event", "stopped").Encode())
	f.Add("info_hash=%01&peer_id=x&port=99999&event=&numwant=-1")
	f.Add("a=%;b=&&&=")
	tr := tracker.New(tracker.Options{MaxPeers: 64})
	tr.Register(ih)
	f.Fuzz(func(t *testing.T, q string) {
		if a, err := tracker.ParseAnnounce(q, netip.MustParseAddr("198.51.100.7")); err == nil && (a.Addr.Port() == 0 || len(a.PeerID) != 20) {
			t.Fatalf("parsed %+v without an error", a)
		}
		r := httptest.NewRequest("GET", "/announce", nil)
		r.URL.RawQuery = q
		r.RemoteAddr = "[2001:db8::7]:1"
		w := httptest.NewRecorder()
		tr.ServeHTTP(w, r)
		var resp map[string]any
		if err := bencode.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer %q: %v", w.Body.Bytes(), err)
		}
		_, failed := resp["failure reason"]
		_, listed := resp["peers"]
		if failed == listed {
			t.Fatalf("answer %v: want a failure reason or peers", resp)
		}
	})
}
