package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/media"
	"github.com/mediastack/mediastack/p2sp/tracker"
)

// Options configures an Origin.
type Options struct {
	// Dir holds the files to publish (its regular files, not its
	// subdirectories; names starting with "." are skipped).
	Dir string
	// WebURL is the web server's base URL as clients reach it
	// ("http://198.51.100.10:8080"); the metainfo's url-list is
	// WebURL+"/files/".
	WebURL string
	// InfoURL is the file-info server's base URL as clients reach it; the
	// metainfo announces to InfoURL+"/announce".
	InfoURL string
	// NoP2P, when it returns true for a file's name in Dir, publishes that
	// file without P2P info: the file-info server answers 404 for it and
	// clients fetch it over HTTP only.
	NoP2P func(name string) bool
	// InfoClient, when set, makes the web server ask the file-info server
	// over HTTP at InfoURL (as when they run on separate hosts) instead of
	// in process. Give it a transport that dials through the node's
	// p2sp.Network.
	InfoClient *http.Client
	// FFprobe: judging a report, also ask ffprobe (when installed) whether
	// the origin's copy plays.
	FFprobe bool
	// WebRate caps the bytes per second the web server sends of files, over
	// all its clients together (0: no cap), like a capped uplink.
	WebRate int64
	// Tracker configures the file-info server's tracker.
	Tracker tracker.Options
	// Logger gets a line per publication and report (default: discard).
	Logger *slog.Logger
}

// Notices a ReportAnswer carries.
const (
	NoticeOriginDamaged = "The sender's copy of this file is damaged on the server; ask the sender to send it again."
	NoticeUnplayable    = "This file cannot be played: its container is damaged."
	NoticeBadPeer       = "A peer sent bad data; it was banned and the download retried from other sources."
	NoticeOriginIntact  = "The server checked its copy and found it intact; the download was retried."
	NoticeStorage       = "The file could not be saved on this device (is the disk full?)."
)

// Origin is a P2SP server: a web server and a file-info server over one set
// of published files.
type Origin struct {
	opts    Options
	log     *slog.Logger
	tracker *tracker.Tracker
	info    infoBackend
	limiter *rate.Limiter // WebRate; nil: no cap

	mu      sync.Mutex
	files   map[p2sp.FileID]*file
	reports []LoggedReport
	stats   Stats
}

// file is one published file.
type file struct {
	rec     p2sp.Record
	path    string
	ext     string
	torrent []byte // bencoded metainfo; nil: no P2P info

	// The last check of the origin's own copy, valid while the file's size
	// and modification time stay the same.
	checkedSize int64
	checkedMod  time.Time
	checkErr    error // nil: intact and playable
	checked     bool
}

// LoggedReport is a report as the web server received and judged it.
type LoggedReport struct {
	Time   time.Time
	Remote string
	Report p2sp.Report
	Answer p2sp.ReportAnswer
}

// Stats counts what the origin served, for tests and the benchmark.
type Stats struct {
	// Requests counts requests by server and route ("web GET /files/{name}",
	// "info GET /announce", ...).
	Requests map[string]int64
	// WebRequests and InfoRequests are the totals of each server.
	WebRequests, InfoRequests int64
	// BytesServed counts file bytes the web server sent.
	BytesServed int64
	// Ranges counts 206 answers.
	Ranges int64
	// Reports counts reports received.
	Reports int64
}

// New checks o and publishes every regular file of o.Dir.
func New(o Options) (*Origin, error) {
	if o.Dir == "" {
		return nil, errors.New("origin: no Dir")
	}
	for _, u := range []struct{ name, v string }{{"WebURL", o.WebURL}, {"InfoURL", o.InfoURL}} {
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("origin: %s %q: want an http:// URL", u.name, u.v)
		}
	}
	o.WebURL = strings.TrimSuffix(o.WebURL, "/")
	o.InfoURL = strings.TrimSuffix(o.InfoURL, "/")
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	og := &Origin{
		opts:    o,
		log:     o.Logger,
		tracker: tracker.New(o.Tracker),
		files:   map[p2sp.FileID]*file{},
		stats:   Stats{Requests: map[string]int64{}},
	}
	if o.WebRate < 0 {
		return nil, fmt.Errorf("origin: WebRate %d", o.WebRate)
	}
	if o.WebRate > 0 {
		og.limiter = rate.NewLimiter(rate.Limit(o.WebRate), int(min(o.WebRate, 64<<10)))
	}
	if o.InfoClient != nil {
		og.info = &remoteInfo{base: o.InfoURL, client: o.InfoClient}
	} else {
		og.info = localInfo{og}
	}
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		p2p := o.NoP2P == nil || !o.NoP2P(e.Name())
		if _, err := og.Publish(filepath.Join(o.Dir, e.Name()), p2p); err != nil {
			return nil, err
		}
	}
	return og, nil
}

// Publish publishes the file at path (with P2P info when p2p is true) and
// returns its record. Publishing the same bytes again updates the path and
// P2P info and keeps the status.
func (o *Origin) Publish(path string, p2p bool) (p2sp.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return p2sp.Record{}, fmt.Errorf("origin: %w", err)
	}
	id, size, err := p2sp.IDOf(f)
	f.Close()
	if err != nil {
		return p2sp.Record{}, fmt.Errorf("origin: hashing %s: %w", path, err)
	}
	ext := extension(path)
	rec := p2sp.Record{ID: id, Name: string(id) + ext, Size: size, Status: p2sp.StatusOK}
	info, perr := media.Probe(path)
	if perr == nil {
		rec.MediaType, rec.Duration = info.Type, info.Duration
	} else {
		rec.MediaType = mime.TypeByExtension(ext)
		if rec.MediaType == "" {
			rec.MediaType = "application/octet-stream"
		}
		o.log.Warn("origin: published a file that does not probe", "path", path, "id", id, "err", perr)
	}
	pub := &file{rec: rec, path: path, ext: ext}
	if p2p {
		mi, err := p2sp.BuildMetainfo(path, rec.Name, o.opts.InfoURL+"/announce", o.opts.WebURL+"/files/")
		if err != nil {
			return p2sp.Record{}, fmt.Errorf("origin: %w", err)
		}
		var buf bytes.Buffer
		if err := mi.Write(&buf); err != nil {
			return p2sp.Record{}, fmt.Errorf("origin: %w", err)
		}
		ih := mi.HashInfoBytes()
		pub.torrent = buf.Bytes()
		pub.rec.InfoHash = ih.HexString()
		pub.rec.PieceLength = p2sp.PieceLength(size)
	}
	o.mu.Lock()
	if old := o.files[id]; old != nil {
		pub.rec.Status, pub.rec.Notice = old.rec.Status, old.rec.Notice
		if old.rec.InfoHash != "" && old.rec.InfoHash != pub.rec.InfoHash {
			o.tracker.Unregister(metainfo.NewHashFromHex(old.rec.InfoHash))
		}
	}
	o.files[id] = pub
	rec = pub.rec
	o.mu.Unlock()
	if p2p {
		o.tracker.Register(metainfo.NewHashFromHex(rec.InfoHash))
	}
	o.log.Info("origin: published", "path", path, "id", id, "type", rec.MediaType, "duration", rec.Duration, "p2p", p2p)
	return rec, nil
}

// extension is path's extension, lowercased, when it is a short
// alphanumeric one (it becomes part of URLs and torrent names).
func extension(path string) string {
	ext := strings.ToLower(filepath.Ext(path))
	if len(ext) < 2 || len(ext) > 16 {
		return ""
	}
	for _, c := range ext[1:] {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return ""
		}
	}
	return ext
}

// Records lists the published files' records, by id.
func (o *Origin) Records() []p2sp.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]p2sp.Record, 0, len(o.files))
	for _, f := range o.files {
		out = append(out, f.rec)
	}
	slices.SortFunc(out, func(a, b p2sp.Record) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// Record returns the record of id and whether it is published (with or
// without P2P info).
func (o *Origin) Record(id p2sp.FileID) (p2sp.Record, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.files[id]
	if f == nil {
		return p2sp.Record{}, false
	}
	return f.rec, true
}

// Torrent returns id's bencoded metainfo, nil when it has none.
func (o *Origin) Torrent(id p2sp.FileID) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if f := o.files[id]; f != nil {
		return f.torrent
	}
	return nil
}

// Tracker is the file-info server's tracker.
func (o *Origin) Tracker() *tracker.Tracker { return o.tracker }

// Reports returns the report log, oldest first.
func (o *Origin) Reports() []LoggedReport {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.reports)
}

// Stats returns a copy of the counters.
func (o *Origin) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.Requests = make(map[string]int64, len(o.stats.Requests))
	for k, v := range o.stats.Requests {
		s.Requests[k] = v
	}
	return s
}

// setStatus records a verdict on id (the file-info server's side).
func (o *Origin) setStatus(id p2sp.FileID, status p2sp.Status, notice string) (p2sp.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.files[id]
	if f == nil {
		return p2sp.Record{}, errNotFound
	}
	f.rec.Status = status
	f.rec.Notice = ""
	if status == p2sp.StatusDamaged {
		f.rec.Notice = notice
	}
	return f.rec, nil
}

var errNotFound = errors.New("no such file")

// checkOwnCopy checks that the origin's copy of f still has f's id and
// plays, re-reading it only when its size or modification time changed.
func (o *Origin) checkOwnCopy(ctx context.Context, id p2sp.FileID) (p2sp.Status, string, error) {
	o.mu.Lock()
	f := o.files[id]
	if f == nil {
		o.mu.Unlock()
		return "", "", errNotFound
	}
	path := f.path
	o.mu.Unlock()

	fi, err := os.Stat(path)
	if err != nil {
		return p2sp.StatusDamaged, NoticeOriginDamaged, fmt.Errorf("the origin cannot read its copy: %w", err)
	}
	o.mu.Lock()
	if f.checked && f.checkedSize == fi.Size() && f.checkedMod.Equal(fi.ModTime()) {
		err := f.checkErr
		o.mu.Unlock()
		return verdict(err)
	}
	o.mu.Unlock()

	err = o.verifyCopy(ctx, id, path)
	o.mu.Lock()
	f.checked, f.checkedSize, f.checkedMod, f.checkErr = true, fi.Size(), fi.ModTime(), err
	o.mu.Unlock()
	return verdict(err)
}

// ownCopyError says what is wrong with the origin's copy.
type ownCopyError struct {
	notice string
	err    error
}

func (e *ownCopyError) Error() string { return e.err.Error() }

func verdict(err error) (p2sp.Status, string, error) {
	var oc *ownCopyError
	if errors.As(err, &oc) {
		return p2sp.StatusDamaged, oc.notice, err
	}
	if err != nil {
		return p2sp.StatusDamaged, NoticeOriginDamaged, err
	}
	return p2sp.StatusOK, "", nil
}

func (o *Origin) verifyCopy(ctx context.Context, id p2sp.FileID, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return &ownCopyError{NoticeOriginDamaged, err}
	}
	got, _, err := p2sp.IDOf(readerCtx{ctx, f})
	f.Close()
	if err != nil {
		return &ownCopyError{NoticeOriginDamaged, fmt.Errorf("reading the origin's copy: %w", err)}
	}
	if got != id {
		return &ownCopyError{NoticeOriginDamaged, fmt.Errorf("the origin's copy now hashes to %s", got)}
	}
	if err := media.CheckPlayable(ctx, path, media.FFprobe(o.opts.FFprobe)); err != nil && !errors.Is(err, media.ErrUnknownFormat) {
		return &ownCopyError{NoticeUnplayable, err}
	}
	return nil
}

// limitedFile paces a file's reads by a shared limiter.
type limitedFile struct {
	ctx context.Context
	f   *os.File
	l   *rate.Limiter
}

func (lf limitedFile) Read(p []byte) (int, error) {
	p = p[:min(len(p), lf.l.Burst())]
	if err := lf.l.WaitN(lf.ctx, len(p)); err != nil {
		return 0, err
	}
	return lf.f.Read(p)
}

func (lf limitedFile) Seek(off int64, whence int) (int64, error) { return lf.f.Seek(off, whence) }

// readerCtx stops a long read when ctx ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Serve runs the web server on web and the file-info server on info (each
// from a node's p2sp.Network, on separate addresses: claim 4) until ctx
// ends, then shuts both down, giving requests in flight a moment to finish.
// It returns the first error a listener fails with, or nil.
func (o *Origin) Serve(ctx context.Context, web, info net.Listener) error {
	servers := []*http.Server{
		{Handler: o.WebHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelDebug)},
		{Handler: o.InfoHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelDebug)},
	}
	errs := make(chan error, 2)
	for i, l := range []net.Listener{web, info} {
		go func() { errs <- servers[i].Serve(l) }()
	}
	pending := len(servers)
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		pending--
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		if s.Shutdown(shutdown) != nil {
			s.Close()
		}
	}
	for ; pending > 0; pending-- {
		<-errs
	}
	if errors.Is(first, http.ErrServerClosed) {
		first = nil
	}
	return first
}
