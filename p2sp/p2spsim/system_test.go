package p2spsim_test

// The system tests of issue 15 over the simulated network: origin, peers
// and a client, each a mediastack stack with a capped link, talking real
// HTTP and BitTorrent. Unit-level behaviour (the watchdog's rules, cache
// commits, parsing) is tested in p2sp/client and p2sp/origin; these check
// that the whole method holds end to end. They assert invariants, not byte
// splits: the clock is paced against real time (package doc).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
	"github.com/mediastack/mediastack/p2sp/origin"
	"github.com/mediastack/mediastack/p2sp/p2spsim"
)

// linkRate caps every node's egress: 16 Mbit/s, 2 MB/s.
const linkRate = 16_000_000

// fetchTimeout bounds one fetch on a loaded two-core machine.
const fetchTimeout = 2 * time.Minute

type world struct {
	lan    *p2spsim.LAN
	origin *p2spsim.Origin
	dir    string
	v6     bool
}

// newWorld starts a LAN with an origin publishing files (name -> bytes),
// the peers and one client node; nodes that are not "origin" get no
// software until the test starts it.
func newWorld(t *testing.T, v6 bool, files map[string][]byte, opts origin.Options, peers int) *world {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []p2spsim.NodeOptions{{Name: "origin", Extra: 1}}
	for i := range peers {
		nodes = append(nodes, p2spsim.NodeOptions{Name: peerName(i)})
	}
	nodes = append(nodes, p2spsim.NodeOptions{Name: "client"})
	lan, err := p2spsim.New(p2spsim.Options{Seed: 1, Bandwidth: linkRate}, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lan.Close)
	opts.Dir = dir
	o, err := p2spsim.StartOrigin(lan.Node("origin"), opts, v6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return &world{lan: lan, origin: o, dir: dir, v6: v6}
}

// getJSON GETs path from the web server, from the client node.
func (w *world) getJSON(path string, v any) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: w.lan.Node("client").Net.DialContext}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(w.origin.WebURL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func peerName(i int) string { return "peer" + string(rune('1'+i)) }

// manager starts a media manager on the named node with its own cache.
func (w *world) manager(t *testing.T, name string, opts client.Options) *client.Manager {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	m, err := p2spsim.NewClient(w.lan.Node(name), w.origin, opts, w.v6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func fetch(t *testing.T, m *client.Manager, id p2sp.FileID) (client.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	return m.Fetch(ctx, id, nil)
}

func idOf(b []byte) p2sp.FileID {
	sum := sha256.Sum256(b)
	return p2sp.FileID(hex.EncodeToString(sum[:]))
}

// wav is a playable file of about n bytes.
func wav(n int) []byte {
	return mediatest.PCMWAV(48000, 2, time.Duration(n)*time.Second/(48000*2*2))
}

// seeders starts n peers whose caches hold id's file and metainfo (as
// after a fetch) and that seed it, and waits until the tracker lists them.
func (w *world) seeders(t *testing.T, id p2sp.FileID, file []byte, ext string, n int) (caches []string) {
	t.Helper()
	for i := range n {
		cache := t.TempDir()
		caches = append(caches, cache)
		if err := os.WriteFile(filepath.Join(cache, string(id)+ext), file, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, string(id)+".torrent"), w.origin.Torrent(id), 0o644); err != nil {
			t.Fatal(err)
		}
		m := w.manager(t, peerName(i), client.Options{CacheDir: cache})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if got, err := m.SeedCache(ctx); err != nil || got != 1 {
			t.Fatalf("%s seeding: %d files, %v; want 1", peerName(i), got, err)
		}
	}
	w.waitSwarm(t, id, n)
	return caches
}

// waitSwarm waits until the origin's tracker lists n peers of id.
func (w *world) waitSwarm(t *testing.T, id p2sp.FileID, n int) {
	t.Helper()
	rec, _ := w.origin.Record(id)
	ih := metainfo.NewHashFromHex(rec.InfoHash)
	deadline := time.Now().Add(time.Minute)
	for len(w.origin.Tracker().Peers(ih)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the tracker lists %v of %s, want %d peers", w.origin.Tracker().Peers(ih), id, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("swarm: %v", w.origin.Tracker().Peers(ih))
}

// checkCached checks that the result's file is in the cache and intact.
func checkCached(t *testing.T, res client.Result, id p2sp.FileID) {
	t.Helper()
	b, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := idOf(b); got != id {
		t.Errorf("cached file %s hashes to %s, want %s", res.Path, got, id)
	}
}

// checkNothingCached checks that the cache holds no file of id and no
// leftover download.
func checkNothingCached(t *testing.T, cache string, id p2sp.FileID) {
	t.Helper()
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), string(id)) {
			t.Errorf("cache holds %s after a failed fetch", e.Name())
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(cache, ".tmp"))
	for _, e := range tmp {
		t.Errorf("cache's .tmp holds %s after the fetch ended", e.Name())
	}
}

func families(t *testing.T, f func(t *testing.T, v6 bool)) {
	for _, v6 := range []bool{false, true} {
		name := "IPv4"
		if v6 {
			name = "IPv6"
		}
		t.Run(name, func(t *testing.T) { f(t, v6) })
	}
}

// TestCacheHit: a second fetch of a file completes from the cache, with no
// request at the origin (claim 8).
func TestCacheHit(t *testing.T) {
	file := wav(1 << 20)
	id := idOf(file)
	w := newWorld(t, false, map[string][]byte{"voice.wav": file}, origin.Options{}, 0)
	m := w.manager(t, "client", client.Options{})
	first, err := fetch(t, m, id)
	if err != nil {
		t.Fatal(err)
	}
	checkCached(t, first, id)
	before := w.origin.Stats()
	second, err := fetch(t, m, id)
	if err != nil {
		t.Fatal(err)
	}
	if second.Method != client.MethodCache || second.Path != first.Path {
		t.Errorf("second fetch: method %s, path %s; want cache, %s", second.Method, second.Path, first.Path)
	}
	if after := w.origin.Stats(); after.WebRequests+after.InfoRequests != before.WebRequests+before.InfoRequests {
		t.Errorf("a cache hit made requests at the origin (before %v, after %v), want none", before.Requests, after.Requests)
	}
}

// TestHTTPOnly: a file published without P2P info comes over HTTP alone:
// the file-info answer is 404 and no BitTorrent segment crosses the LAN
// (claim 9).
func TestHTTPOnly(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		file := wav(1 << 20)
		id := idOf(file)
		w := newWorld(t, v6, map[string][]byte{"voice.wav": file},
			origin.Options{NoP2P: func(string) bool { return true }}, 1)
		var bt []interface{ Load() int64 }
		for _, n := range w.lan.Nodes {
			bt = append(bt, n.CountTCP(p2spsim.BitTorrentPort))
		}
		m := w.manager(t, "client", client.Options{})
		w.manager(t, peerName(0), client.Options{}) // a peer is up, but nobody may dial it
		hc := &http.Client{Transport: &http.Transport{DialContext: w.lan.Node("client").Net.DialContext}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(w.origin.WebURL + "/p2p/" + string(id))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /p2p/%s: %s, want 404 (no P2P info)", id, resp.Status)
		}
		res, err := fetch(t, m, id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != client.MethodHTTP {
			t.Errorf("method %s, want http", res.Method)
		}
		checkCached(t, res, id)
		for i, c := range bt {
			if n := c.Load(); n != 0 {
				t.Errorf("%s saw %d BitTorrent segments on an HTTP-only fetch", w.lan.Nodes[i].Name, n)
			}
		}
		if got := res.Sources[client.WebSource]; got != int64(len(file)) {
			t.Errorf("web source %d bytes, want all %d (sources %v)", got, len(file), res.Sources)
		}
	})
}

// TestSimultaneous: with P2P info and three seeding peers, the client
// downloads from the web seed and every peer at once (claim 7, step 3).
func TestSimultaneous(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		file := wav(6 << 20)
		id := idOf(file)
		w := newWorld(t, v6, map[string][]byte{"clip.wav": file}, origin.Options{}, 3)
		w.seeders(t, id, file, ".wav", 3)
		m := w.manager(t, "client", client.Options{})
		res, err := fetch(t, m, id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != client.MethodP2SP {
			t.Errorf("method %s, want p2sp", res.Method)
		}
		checkCached(t, res, id)
		if res.Sources[client.WebSource] <= 0 {
			t.Errorf("no bytes from the web seed: %v", res.Sources)
		}
		var total int64
		for i := range 3 {
			node := w.lan.Node(peerName(i))
			addr := node.V4[0]
			if v6 {
				addr = node.V6[0]
			}
			if res.Sources[addr.String()] <= 0 {
				t.Errorf("no bytes from %s (%s): %v", peerName(i), addr, res.Sources)
			}
		}
		for _, n := range res.Sources {
			total += n
		}
		if total < int64(len(file)) {
			t.Errorf("sources add up to %d bytes, less than the file's %d", total, len(file))
		}
		t.Logf("%s in %v: %v", res.Method, res.Elapsed, res.Sources)
	})
}

// TestCorruptingPeer: a peer that serves wrong bytes has its pieces counted
// bad and is banned; the file still arrives intact, and the origin received
// a report.
func TestCorruptingPeer(t *testing.T) {
	file := wav(4 << 20)
	id := idOf(file)
	w := newWorld(t, false, map[string][]byte{"clip.wav": file}, origin.Options{}, 1)
	caches := w.seeders(t, id, file, ".wav", 1)
	// The peer checked its copy when it started seeding; now the copy
	// rots: every byte it serves from here on is wrong.
	bad := make([]byte, len(file))
	for i := range bad {
		bad[i] = file[i] ^ 0x5a
	}
	if err := os.WriteFile(filepath.Join(caches[0], string(id)+".wav"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	reportsBefore := w.origin.Stats().Reports

	m := w.manager(t, "client", client.Options{})
	got, err := fetch(t, m, id)
	if err != nil {
		t.Fatal(err)
	}
	checkCached(t, got, id)
	peerAddr := w.lan.Node(peerName(0)).V4[0]
	if got.BadPieces == 0 {
		t.Errorf("no bad pieces counted (sources %v)", got.Sources)
	}
	if !slices.Contains(got.Banned, peerAddr) {
		t.Errorf("banned %v, want the corrupting peer %s among them", got.Banned, peerAddr)
	}
	if got.Reported == nil {
		t.Errorf("no report answer in the result")
	}
	if n := w.origin.Stats().Reports - reportsBefore; n < 1 {
		t.Errorf("the origin received %d reports, want at least 1", n)
	}
}

// TestBadOrigin: a file changed on disk after publishing (the web seed's
// bytes no longer match the metainfo) ends the fetch with a report, the
// origin's damaged notice, and nothing in the cache.
func TestBadOrigin(t *testing.T) {
	file := wav(2 << 20)
	id := idOf(file)
	w := newWorld(t, false, map[string][]byte{"clip.wav": file}, origin.Options{}, 0)
	changed := append([]byte(nil), file...)
	for i := len(changed) / 2; i < len(changed); i++ {
		changed[i] ^= 0xff
	}
	if err := os.WriteFile(filepath.Join(w.dir, "clip.wav"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	m := w.manager(t, "client", client.Options{CacheDir: cache, StallTimeout: 10 * time.Second})
	_, err := fetch(t, m, id)
	checkFailure(t, w, err, id, cache)
}

// TestUnplayable: a file whose bytes are intact but whose container does
// not parse (an MP4 without its index) is reported at the playability
// stage, marked damaged, and not cached.
func TestUnplayable(t *testing.T) {
	mp4 := mediatest.MP4("soun", 2*time.Second, 100, false)
	broken := brokenMP4(t, mp4)
	id := idOf(broken)
	w := newWorld(t, false, map[string][]byte{"clip.mp4": broken}, origin.Options{}, 0)
	cache := t.TempDir()
	m := w.manager(t, "client", client.Options{CacheDir: cache})
	_, err := fetch(t, m, id)
	fe := checkFailure(t, w, err, id, cache)
	if fe != nil && fe.Report.Stage != p2sp.StagePlayable {
		t.Errorf("report stage %s, want %s", fe.Report.Stage, p2sp.StagePlayable)
	}
}

// brokenMP4 renames the MP4's moov box so the file has no index.
func brokenMP4(t *testing.T, b []byte) []byte {
	t.Helper()
	i := strings.Index(string(b), "moov")
	if i < 0 {
		t.Fatal("test MP4 has no moov box")
	}
	out := append([]byte(nil), b...)
	copy(out[i:], "free")
	return out
}

// checkFailure checks a failed fetch: a FetchError whose report reached the
// origin and came back damaged with a notice, nothing cached, and later
// records carrying the status.
func checkFailure(t *testing.T, w *world, err error, id p2sp.FileID, cache string) *client.FetchError {
	t.Helper()
	var fe *client.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("fetch error %v, want a *client.FetchError", err)
	}
	if fe.Answer.Status != p2sp.StatusDamaged || fe.Answer.Notice == "" {
		t.Errorf("answer %+v, want status damaged with a notice", fe.Answer)
	}
	if w.origin.Stats().Reports < 1 {
		t.Errorf("the origin counted no report")
	}
	checkNothingCached(t, cache, id)
	var rec p2sp.Record
	if err := w.getJSON("/p2p/"+string(id), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Status != p2sp.StatusDamaged || rec.Notice == "" {
		t.Errorf("record after the report: status %q notice %q, want damaged with a notice", rec.Status, rec.Notice)
	}
	return fe
}
