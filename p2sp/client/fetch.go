package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/mediastack/mediastack/p2sp"
)

// Method is how Fetch got a file.
type Method string

const (
	MethodCache Method = "cache" // a cache hit: no network request (claim 8)
	MethodHTTP  Method = "http"  // no P2P info: HTTP from the web server alone (claim 9)
	MethodP2SP  Method = "p2sp"  // HTTP (web seed) and BitTorrent peers at once (claim 7, step 3)
)

// WebSource is the key of the web server's bytes in Result.Sources and
// Progress.Sources; the others are peer IP addresses.
const WebSource = "web"

// Result is a completed Fetch.
type Result struct {
	Path   string      // the verified file in the cache
	Record p2sp.Record // as the file-info server gave it (synthesised for HTTP only; empty on a cache hit)
	Method Method
	// Sources counts the useful bytes each source delivered: "web" and
	// each peer's IP address.
	Sources   map[string]int64
	BadPieces int          // pieces that failed their hash (and were fetched again)
	Banned    []netip.Addr // peers banned for sending bad data
	Elapsed   time.Duration
	// Fallback says why a file with a record went over HTTP alone (its
	// metainfo did not parse or did not match the record); empty otherwise.
	Fallback string
	// Reported is the web server's answer to the informational report sent
	// when the file arrived intact although bad pieces were counted (a bad
	// peer); nil when nothing was reported.
	Reported *p2sp.ReportAnswer
}

// Progress is what Fetch tells its progress callback, about four times a
// second.
type Progress struct {
	Method    Method
	Done      int64   // verified-or-received bytes so far
	Size      int64   // 0 when not yet known
	Rate      float64 // bytes per second over the last second or so
	Sources   map[string]int64
	BadPieces int
}

// FetchError is a failed verification (or a download the watchdog ended):
// the report sent to the web server and its answer, whose notice is what
// the user is shown (claim 10).
type FetchError struct {
	Report p2sp.Report
	Answer p2sp.ReportAnswer
	// ReportErr is why the report could not be delivered (nil: delivered).
	ReportErr error
}

func (e *FetchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "p2sp client: %s: %s", e.Report.ID, e.Report.Stage)
	if e.Report.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Report.Detail)
	}
	switch {
	case e.Answer.Notice != "":
		fmt.Fprintf(&b, "; the server says (%s): %s", e.Answer.Status, e.Answer.Notice)
	case e.ReportErr != nil:
		fmt.Fprintf(&b, "; report not delivered: %v", e.ReportErr)
	}
	return b.String()
}

// flight is one fetch of an id in progress; other Fetches and Streams of
// the id wait for it.
type flight struct {
	done chan struct{} // closed when res and err are set
	res  Result
	err  error

	// ready is closed when the download can be streamed: the P2SP path
	// has added its torrent (t), or the HTTP-only path knows the file's
	// size (g); or when the fetch ends without either. rec is the file's
	// record (provisional on the HTTP-only path).
	ready     chan struct{}
	readyOnce sync.Once
	t         *torrent.Torrent
	g         *growingFile
	rec       p2sp.Record

	// whole is closed when the P2SP download is complete, every piece
	// passed its hash, in the file at wholePath, which is then verified as
	// a whole: Streams read it meanwhile.
	whole     chan struct{}
	wholePath string
}

func newFlight() *flight {
	return &flight{done: make(chan struct{}), ready: make(chan struct{}), whole: make(chan struct{})}
}

func (f *flight) setReady(t *torrent.Torrent, g *growingFile, rec p2sp.Record) {
	f.readyOnce.Do(func() {
		f.t, f.g, f.rec = t, g, rec
		close(f.ready)
	})
}

// Fetch gets the file id: from the cache, or downloaded, verified and
// cached (claims 7-10). progress, when not nil, is called from Fetch's
// goroutine. Concurrent Fetches of one id share one download.
func (m *Manager) Fetch(ctx context.Context, id p2sp.FileID, progress func(Progress)) (Result, error) {
	start := time.Now()
	if _, err := p2sp.ParseFileID(string(id)); err != nil {
		return Result{}, err
	}
	for {
		// Step 1: the cache; a hit completes at once (claim 8).
		if path, ok := m.cachedPath(id); ok {
			return Result{Path: path, Method: MethodCache, Elapsed: time.Since(start)}, nil
		}
		f, busy, err := m.joinFlight(id)
		if err != nil {
			return Result{}, err
		}
		if !busy {
			m.fly(ctx, id, progress, f)
			res := f.res
			res.Elapsed = time.Since(start)
			return res, f.err
		}
		select {
		case <-f.done:
			if f.err != nil {
				return Result{}, f.err
			}
			// Now a cache hit.
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
}

var errClosed = errors.New("p2sp client: closed")

// joinFlight returns the fetch of id in progress (busy), or a new one the
// caller must fly.
func (m *Manager) joinFlight(id p2sp.FileID) (f *flight, busy bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false, errClosed
	}
	f, busy = m.inflight[id]
	if !busy {
		f = newFlight()
		m.inflight[id] = f
	}
	return f, busy, nil
}

// fly runs flight f, the one fetch of id, to its end. Closing the Manager
// ends it too.
func (m *Manager) fly(ctx context.Context, id p2sp.FileID, progress func(Progress), f *flight) {
	if progress == nil {
		progress = func(Progress) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.life, cancel)
	defer stop()
	start := time.Now()
	f.res, f.err = m.fetch(ctx, id, progress, f)
	if f.err != nil && m.life.Err() != nil {
		f.err = errClosed
	}
	f.res.Elapsed = time.Since(start)
	f.setReady(nil, nil, p2sp.Record{})
	m.mu.Lock()
	delete(m.inflight, id)
	m.mu.Unlock()
	close(f.done)
}

// fetch is Fetch's steps 2-4 for one id, with the cache missed.
func (m *Manager) fetch(ctx context.Context, id p2sp.FileID, progress func(Progress), f *flight) (Result, error) {
	// Step 2: the file's P2P info (through the web server, or directly).
	rec, mi, fallback, err := m.lookup(ctx, id)
	if err != nil {
		return Result{}, err
	}
	defer m.removeTmp(id)
	if err := os.MkdirAll(m.tmpDir(id), cacheDirPerm); err != nil {
		return Result{}, &FetchError{Report: p2sp.Report{ID: id, Stage: p2sp.StageStorage, Detail: err.Error()}}
	}
	// Step 3: download.
	var dl download
	if mi == nil {
		dl, err = m.fetchHTTP(ctx, id, rec, progress, f)
	} else {
		dl, err = m.fetchP2SP(ctx, id, rec, mi, progress, f)
	}
	if err != nil {
		return Result{}, err
	}
	dl.res.Fallback = fallback
	// Step 4: verify the whole file, then that it plays; only then cache it.
	if fe := m.verify(ctx, id, dl); fe != nil {
		return dl.res, fe
	}
	var mib []byte
	if mi != nil {
		var buf bytes.Buffer
		if err := mi.Write(&buf); err != nil {
			return dl.res, err
		}
		mib = buf.Bytes()
	}
	path, err := m.commit(id, dl.path, dl.res.Record.Name, mib)
	if err != nil {
		return dl.res, m.fail(ctx, p2sp.Report{ID: id, Stage: p2sp.StageStorage, Detail: err.Error()})
	}
	dl.res.Path = path
	if dl.res.BadPieces > 0 {
		// The file is intact, but a peer sent bad pieces: tell the origin
		// (it keeps the file ok when its own copy checks out).
		ans, err := m.report(ctx, dl.report(id, p2sp.StagePieces, "bad pieces from peers; the file arrived intact"))
		if err != nil {
			m.log.Warn("p2sp client: report not delivered", "id", id, "err", err)
		} else {
			dl.res.Reported = &ans
		}
	}
	if mi != nil {
		if err := m.seed(ctx, mi, path, true); err != nil {
			m.log.Warn("p2sp client: seeding a fetched file", "id", id, "err", err)
		}
	}
	return dl.res, nil
}

// download is a finished step 3: the data at path, not yet verified as a
// whole.
type download struct {
	path string
	res  Result
	bad  []int // indexes of pieces that failed their hash
}

func (d *download) report(id p2sp.FileID, stage p2sp.Stage, detail string) p2sp.Report {
	r := p2sp.Report{ID: id, Stage: stage, BadPieces: d.bad, Detail: detail}
	for _, a := range d.res.Banned {
		r.BannedPeers = append(r.BannedPeers, a.String())
	}
	return r
}

// lookup asks for id's record and metainfo: nil metainfo means HTTP only
// (no P2P info, or metainfo that cannot be used: fallback says why).
func (m *Manager) lookup(ctx context.Context, id p2sp.FileID) (rec p2sp.Record, mi *metainfo.MetaInfo, fallback string, err error) {
	recURL, miURL := m.opts.Origin+"/p2p/"+string(id), m.opts.Origin+"/p2p/"+string(id)+torrentExt
	if m.opts.InfoServer != "" {
		recURL, miURL = m.opts.InfoServer+"/files/"+string(id), m.opts.InfoServer+"/files/"+string(id)+torrentExt
	}
	body, err := m.get(ctx, recURL, 64<<10)
	if errors.Is(err, errNotFound) {
		return p2sp.Record{ID: id}, nil, "", nil // claim 9: HTTP only
	}
	if err != nil {
		return rec, nil, "", fmt.Errorf("p2sp client: file info: %w", err)
	}
	if err := json.Unmarshal(body, &rec); err != nil {
		return rec, nil, "", fmt.Errorf("p2sp client: file info for %s: %w", id, err)
	}
	if rec.ID != id || rec.Size < 0 {
		return rec, nil, "", fmt.Errorf("p2sp client: file info for %s: the record is for %q, size %d", id, rec.ID, rec.Size)
	}
	if rec.Status == p2sp.StatusDamaged {
		m.log.Warn("p2sp client: the file is marked damaged", "id", id, "notice", rec.Notice)
	}
	if rec.InfoHash == "" {
		return rec, nil, "", nil
	}
	body, err = m.get(ctx, miURL, maxMetainfoLen)
	if errors.Is(err, errNotFound) {
		return rec, nil, "no metainfo (404)", nil
	}
	if err != nil {
		return rec, nil, "", fmt.Errorf("p2sp client: metainfo: %w", err)
	}
	mi, err = parseMetainfo(body, rec)
	if err != nil {
		m.log.Warn("p2sp client: unusable metainfo, HTTP only", "id", id, "err", err)
		return rec, nil, err.Error(), nil
	}
	return rec, mi, "", nil
}

// parseMetainfo decodes a .torrent and checks it against the record: a v1
// single-file torrent named rec.Name, rec.Size long, with rec's infohash,
// and pieces that cover the file exactly.
func parseMetainfo(body []byte, rec p2sp.Record) (*metainfo.MetaInfo, error) {
	mi, err := metainfo.Load(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("malformed metainfo: %w", err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("malformed metainfo info: %w", err)
	}
	switch {
	case mi.HashInfoBytes().HexString() != strings.ToLower(rec.InfoHash):
		return nil, fmt.Errorf("metainfo infohash %s, record %s", mi.HashInfoBytes().HexString(), rec.InfoHash)
	case !info.HasV1() || len(info.Files) != 0:
		return nil, errors.New("metainfo: want a v1 single-file torrent")
	case info.Name != rec.Name || info.Length != rec.Size:
		return nil, fmt.Errorf("metainfo names %q of %d bytes, record %q of %d", info.Name, info.Length, rec.Name, rec.Size)
	case info.PieceLength <= 0 || info.PieceLength > 64<<20 || info.Length <= 0:
		return nil, fmt.Errorf("metainfo piece length %d", info.PieceLength)
	case int64(info.NumPieces()) != (info.Length+info.PieceLength-1)/info.PieceLength:
		return nil, fmt.Errorf("metainfo has %d pieces for %d bytes of %d", info.NumPieces(), info.Length, info.PieceLength)
	}
	return mi, nil
}

// verify checks the downloaded file's SHA-256 against its id and that it
// plays; a failure is reported and returned as a *FetchError.
func (m *Manager) verify(ctx context.Context, id p2sp.FileID, dl download) error {
	f, err := os.Open(dl.path)
	if err != nil {
		return m.fail(ctx, dl.report(id, p2sp.StageStorage, err.Error()))
	}
	got, n, err := p2sp.IDOf(f)
	f.Close()
	if err != nil {
		return m.fail(ctx, dl.report(id, p2sp.StageStorage, err.Error()))
	}
	if got != id {
		return m.fail(ctx, dl.report(id, p2sp.StageSHA256, fmt.Sprintf("%d bytes with SHA-256 %s", n, got)))
	}
	if err := m.opts.CheckPlayable(ctx, dl.path); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The report names the file, not where this device keeps it.
		detail := strings.ReplaceAll(err.Error(), dl.path, dl.res.Record.Name)
		return m.fail(ctx, dl.report(id, p2sp.StagePlayable, detail))
	}
	return nil
}

// fail reports r and returns the *FetchError with the web server's answer
// (for a local storage failure too: the origin answers with what to tell
// the user and keeps the file ok).
func (m *Manager) fail(ctx context.Context, r p2sp.Report) *FetchError {
	fe := &FetchError{Report: r}
	fe.Answer, fe.ReportErr = m.report(ctx, r)
	m.log.Warn("p2sp client: fetch failed", "id", r.ID, "stage", r.Stage, "detail", r.Detail, "notice", fe.Answer.Notice)
	return fe
}

// report POSTs r to the web server's /reports. It has its own deadline and
// survives ctx's cancellation: a fetch ended by its watchdog still reports.
func (m *Manager) report(ctx context.Context, r p2sp.Report) (p2sp.ReportAnswer, error) {
	var ans p2sp.ReportAnswer
	body, err := json.Marshal(r)
	if err != nil {
		return ans, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.opts.Origin+"/reports", bytes.NewReader(body))
	if err != nil {
		return ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ans, fmt.Errorf("POST /reports: %s%s", resp.Status, errorBody(resp.Body))
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(&ans); err != nil {
		return ans, fmt.Errorf("POST /reports: %w", err)
	}
	return ans, nil
}
