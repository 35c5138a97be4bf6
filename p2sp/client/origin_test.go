package client

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/origin"
)

// testOrigin is p2sp/origin's web server and file-info server on their own
// addresses, with faults a test can switch on in front of them.
type testOrigin struct {
	t *testing.T
	*origin.Origin
	dir     string
	url     string // the web server
	infoURL string // the file-info server

	mu                              sync.Mutex
	badTorrent, badTracker, webDown bool
	cutOnce                         int // the next /files answer breaks after this many bytes
	announces                       int
}

// newTestOrigin starts an origin whose web server's answers leave at most
// at webRate bytes per second (0: no cap), like a capped origin link.
func newTestOrigin(t *testing.T, webRate int64) *testOrigin {
	t.Helper()
	return newTestOriginOn(t, listen(t, originAddr), listen(t, infoAddr), webRate)
}

// newTestOriginOn is newTestOrigin with the web server and the file-info
// server on the given listeners.
func newTestOriginOn(t *testing.T, webL, infoL net.Listener, webRate int64) *testOrigin {
	t.Helper()
	o := &testOrigin{t: t, dir: t.TempDir()}
	o.url, o.infoURL = "http://"+webL.Addr().String(), "http://"+infoL.Addr().String()
	var err error
	o.Origin, err = origin.New(origin.Options{Dir: o.dir, WebURL: o.url, InfoURL: o.infoURL})
	if err != nil {
		t.Fatal(err)
	}
	var lim *rate.Limiter
	if webRate > 0 {
		lim = rate.NewLimiter(rate.Limit(webRate), 32<<10)
	}
	web := o.WebHandler()
	serve(t, webL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		down, badTorrent, cut := o.webDown, o.badTorrent, 0
		if strings.HasPrefix(r.URL.Path, "/files/") {
			cut, o.cutOnce = o.cutOnce, 0
		}
		o.mu.Unlock()
		if cut > 0 {
			w = &cutWriter{ResponseWriter: w, left: cut}
		}
		switch {
		case down && strings.HasPrefix(r.URL.Path, "/files/"):
			http.Error(w, `{"error": "down"}`, http.StatusServiceUnavailable)
		case badTorrent && strings.HasSuffix(r.URL.Path, ".torrent"):
			w.Write([]byte("d8:announce5:http:4:infod6:lengthi-5e4:name")) // cut short, a negative length
		case lim != nil:
			web.ServeHTTP(throttledWriter{w, lim, r.Context()}, r)
		default:
			web.ServeHTTP(w, r)
		}
	}))
	info := o.InfoHandler()
	serve(t, infoL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		bad := o.badTracker
		if r.URL.Path == "/announce" {
			o.announces++
		}
		o.mu.Unlock()
		if bad && r.URL.Path == "/announce" {
			w.Write([]byte("d8:intervali60e5:peers7:\x01\x02\x03e\xff\xfe")) // garbage
			return
		}
		info.ServeHTTP(w, r)
	}))
	return o
}

func listen(t *testing.T, a netip.Addr) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func serve(t *testing.T, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	})
}

func (o *testOrigin) set(f func(o *testOrigin)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

func (o *testOrigin) announceCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.announces
}

// publish writes data as a file with extension ext and publishes it (with
// P2P info when p2p).
func (o *testOrigin) publish(data []byte, ext string, p2p bool) (p2sp.FileID, string) {
	o.t.Helper()
	id, _, _ := p2sp.IDOf(bytes.NewReader(data))
	path := filepath.Join(o.dir, string(id)+ext)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		o.t.Fatal(err)
	}
	if _, err := o.Publish(path, p2p); err != nil {
		o.t.Fatal(err)
	}
	return id, path
}

func (o *testOrigin) metainfo(id p2sp.FileID) []byte { return o.Torrent(id) }

func (o *testOrigin) gotReports() []p2sp.Report {
	var reps []p2sp.Report
	for _, r := range o.Reports() {
		reps = append(reps, r.Report)
	}
	return reps
}

func (o *testOrigin) requests() int64 {
	s := o.Stats()
	return s.WebRequests + s.InfoRequests
}

// corrupt flips a byte in every piece of the published file on disk: a bad
// origin (the file changed after it was published).
func (o *testOrigin) corrupt(id p2sp.FileID) {
	o.t.Helper()
	rec, _ := o.Record(id)
	path := filepath.Join(o.dir, rec.Name)
	data, err := os.ReadFile(path)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := os.WriteFile(path, corrupted(data, p2sp.PieceLength(int64(len(data)))), 0o644); err != nil {
		o.t.Fatal(err)
	}
}

func corrupted(data []byte, pieceLen int64) []byte {
	bad := bytes.Clone(data)
	for i := int64(100); i < int64(len(bad)); i += pieceLen {
		bad[i] ^= 0xff
	}
	return bad
}

// waitSwarm waits until the tracker lists n peers of id's torrent: peers
// announce asynchronously, and a client that announced before them would
// not hear of them for an interval.
func (o *testOrigin) waitSwarm(id p2sp.FileID, n int) {
	o.t.Helper()
	rec, _ := o.Record(id)
	ih := metainfo.NewHashFromHex(rec.InfoHash)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := len(o.Tracker().Peers(ih))
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("the tracker lists %d peers of %s, want %d", got, id, n)
		}
	}
}

type throttledWriter struct {
	http.ResponseWriter
	l   *rate.Limiter
	ctx context.Context
}

func (w throttledWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), w.l.Burst())
		if err := w.l.WaitN(w.ctx, c); err != nil {
			return n, err
		}
		m, err := w.ResponseWriter.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		p = p[c:]
	}
	return n, nil
}

// cutWriter breaks the connection after left bytes of the body.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		w.ResponseWriter.Write(p[:w.left])
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	w.left -= len(p)
	return w.ResponseWriter.Write(p)
}
