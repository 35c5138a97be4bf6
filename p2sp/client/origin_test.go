package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"golang.org/x/time/rate"

	"github.com/mediastack/mediastack/p2sp"
)

// testOrigin is a small web server + file-info server + tracker in one
// listener, standing in for p2sp/origin until that package is merged: the
// client needs only its HTTP API (BRIEF's p2sp contract).
type testOrigin struct {
	t    *testing.T
	dir  string
	url  string
	srv  *http.Server
	lim  *rate.Limiter // the web server's egress cap; nil: none
	addr netip.Addr

	mu                     sync.Mutex
	files                  map[p2sp.FileID]*testFile
	reports                []p2sp.Report
	swarm                  map[string]map[netip.AddrPort]bool // infohash -> peers
	badTorrent, badTracker bool
	webDown                bool // /files answers 503

	requests  atomic.Int64 // every request
	ranges    atomic.Int64 // GET /files with a Range header
	announces atomic.Int64
}

type testFile struct {
	path string
	rec  p2sp.Record
	mi   []byte // nil: no P2P info
}

func newTestOrigin(t *testing.T, addr netip.Addr, webRate int64) *testOrigin {
	t.Helper()
	o := &testOrigin{t: t, dir: t.TempDir(), addr: addr, files: map[p2sp.FileID]*testFile{}, swarm: map[string]map[netip.AddrPort]bool{}}
	if webRate > 0 {
		o.lim = rate.NewLimiter(rate.Limit(webRate), 32<<10)
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	o.url = "http://" + l.Addr().String()
	o.srv = &http.Server{Handler: http.HandlerFunc(o.serve)}
	go o.srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := o.srv.Shutdown(ctx); err != nil {
			o.srv.Close()
		}
	})
	return o
}

// publish writes data as name's file (id + ext) and, with p2p, its record
// and metainfo (web seed: this origin, tracker: this origin's /announce).
func (o *testOrigin) publish(data []byte, ext string, p2p bool) (p2sp.FileID, string) {
	o.t.Helper()
	id, _, _ := p2sp.IDOf(bytes.NewReader(data))
	name := string(id) + ext
	path := filepath.Join(o.dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		o.t.Fatal(err)
	}
	f := &testFile{path: path, rec: p2sp.Record{ID: id, Name: name, Size: int64(len(data)), MediaType: "audio/wav", Status: p2sp.StatusOK}}
	if p2p {
		mi, err := p2sp.BuildMetainfo(path, name, o.url+"/announce", o.url+"/files/")
		if err != nil {
			o.t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := mi.Write(&buf); err != nil {
			o.t.Fatal(err)
		}
		f.mi = buf.Bytes()
		f.rec.InfoHash = mi.HashInfoBytes().HexString()
		f.rec.PieceLength = p2sp.PieceLength(int64(len(data)))
	}
	o.mu.Lock()
	o.files[id] = f
	o.mu.Unlock()
	return id, path
}

func (o *testOrigin) metainfo(id p2sp.FileID) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.files[id].mi
}

func (o *testOrigin) gotReports() []p2sp.Report {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]p2sp.Report(nil), o.reports...)
}

func (o *testOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/files/"):
		o.serveFile(w, r, strings.TrimPrefix(path, "/files/"))
	case strings.HasPrefix(path, "/p2p/"):
		o.serveInfo(w, strings.TrimPrefix(path, "/p2p/"))
	case path == "/reports" && r.Method == http.MethodPost:
		var rep p2sp.Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		ans := p2sp.ReportAnswer{Status: p2sp.StatusOK, Notice: "thanks: the file checks out at the origin"}
		if rep.Stage != p2sp.StagePieces {
			ans = p2sp.ReportAnswer{Status: p2sp.StatusDamaged, Notice: "this file is damaged at the origin; ask the sender to send it again"}
		}
		o.mu.Lock()
		o.reports = append(o.reports, rep)
		if f := o.files[rep.ID]; f != nil {
			f.rec.Status, f.rec.Notice = ans.Status, ans.Notice
		}
		o.mu.Unlock()
		json.NewEncoder(w).Encode(ans)
	case path == "/announce":
		o.announce(w, r)
	default:
		httpError(w, http.StatusNotFound, "no such path")
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (o *testOrigin) lookup(name string) *testFile {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := p2sp.FileID(name)
	if i := strings.IndexByte(name, '.'); i >= 0 {
		id = p2sp.FileID(name[:i])
	}
	f := o.files[id]
	if f == nil || name != string(id) && name != f.rec.Name {
		return nil
	}
	cp := *f
	return &cp
}

func (o *testOrigin) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	f := o.lookup(name)
	if f == nil {
		httpError(w, http.StatusNotFound, "no such file")
		return
	}
	o.mu.Lock()
	down := o.webDown
	o.mu.Unlock()
	if down {
		httpError(w, http.StatusServiceUnavailable, "down")
		return
	}
	if r.Header.Get("Range") != "" {
		o.ranges.Add(1)
	}
	file, err := os.Open(f.path)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer file.Close()
	w.Header().Set("Content-Type", f.rec.MediaType)
	w.Header().Set("ETag", `"`+string(f.rec.ID)+`"`)
	var ww http.ResponseWriter = w
	if o.lim != nil {
		ww = throttledWriter{w, o.lim, r.Context()}
	}
	http.ServeContent(ww, r, f.rec.Name, time.Time{}, file)
}

func (o *testOrigin) serveInfo(w http.ResponseWriter, name string) {
	torrent := strings.HasSuffix(name, ".torrent")
	f := o.lookup(strings.TrimSuffix(name, ".torrent"))
	if f == nil || f.mi == nil {
		httpError(w, http.StatusNotFound, "no P2P info")
		return
	}
	if !torrent {
		json.NewEncoder(w).Encode(f.rec)
		return
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	o.mu.Lock()
	bad := o.badTorrent
	o.mu.Unlock()
	if bad {
		w.Write([]byte("d8:announce5:http:4:infod6:lengthi-5e4:name")) // cut short, negative length
		return
	}
	w.Write(f.mi)
}

// announce is a BEP 3/23 tracker: compact IPv4 peers, the requester left out.
func (o *testOrigin) announce(w http.ResponseWriter, r *http.Request) {
	o.announces.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.badTracker {
		w.Write([]byte("d8:intervali60e5:peers7:\x01\x02\x03e\xff\xfe")) // garbage
		return
	}
	q := r.URL.Query()
	ih := q.Get("info_hash")
	port, err := strconv.ParseUint(q.Get("port"), 10, 16)
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ip, ierr := netip.ParseAddr(host)
	if len(ih) != 20 || err != nil || ierr != nil {
		w.Write(bencode.MustMarshal(map[string]string{"failure reason": "bad announce"}))
		return
	}
	self := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	peers := o.swarm[ih]
	if peers == nil {
		peers = map[netip.AddrPort]bool{}
		o.swarm[ih] = peers
	}
	if q.Get("event") == "stopped" {
		delete(peers, self)
	} else {
		peers[self] = true
	}
	var compact []byte
	for p := range peers {
		if p != self && p.Addr().Is4() {
			ip := p.Addr().As4()
			compact = append(append(compact, ip[:]...), byte(p.Port()>>8), byte(p.Port()))
		}
	}
	w.Write(bencode.MustMarshal(map[string]any{"interval": 60, "peers": string(compact)}))
}

// corrupt flips a byte in every piece of the published file on disk: a bad
// origin (the file changed after it was published).
func (o *testOrigin) corrupt(id p2sp.FileID) {
	o.t.Helper()
	f := o.lookup(string(id))
	data, err := os.ReadFile(f.path)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := os.WriteFile(f.path, corrupted(data, p2sp.PieceLength(int64(len(data)))), 0o644); err != nil {
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

var errNoFile = errors.New("no file")

// waitSwarm waits until the tracker knows n peers of id's torrent: peers
// announce asynchronously, and a client that announced before them would
// not hear of them for an interval.
func (o *testOrigin) waitSwarm(id p2sp.FileID, n int) {
	o.t.Helper()
	f := o.lookup(string(id))
	ih, err := hex.DecodeString(f.rec.InfoHash)
	if err != nil {
		o.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		o.mu.Lock()
		got := len(o.swarm[string(ih)])
		o.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("the tracker knows %d peers of %s, want %d", got, id, n)
		}
	}
}
