// Package client is the P2SP client of seed 002: the media manager (120)
// that fetches a file the way claims 7-10 describe, and the peer (300) that
// keeps seeding what it fetched (claims 5-6).
//
// A Manager owns one cache directory and one BitTorrent client
// (github.com/anacrolix/torrent) whose every socket goes through
// Options.Net, so it runs on the host's stack or on mediastack's. Fetch
// looks in the cache, asks the web server (or the file-info server
// directly) for the file's P2P info, downloads over HTTP and BitTorrent at
// once (or over HTTP alone when there is no info), verifies every piece,
// the whole file's SHA-256 and that it is playable, and only then moves the
// file into the cache. A failed verification is reported to the web server,
// whose notice comes back in a *FetchError. SeedCache seeds every cached
// file that has metainfo beside it; Open streams a file while it downloads.
//
// Plug it in:
//
//	m, err := client.New(client.Options{Net: p2sp.HostNetwork(self), Listen: netip.AddrPortFrom(self, 6881),
//		Origin: "http://198.51.100.10", CacheDir: dir})
//	defer m.Close()
//	res, err := m.Fetch(ctx, id, func(p client.Progress) { ... })
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"

	"github.com/mediastack/mediastack/p2sp"
)

// Options configure a Manager.
type Options struct {
	// Net is where every socket lives: the BitTorrent listener, peer dials,
	// web-seed requests, tracker announces and the HTTP requests to the web
	// server and the file-info server.
	Net p2sp.Network
	// Listen is the BitTorrent listener's address (the node's own address:
	// peers and the tracker see it). Its port may be 0.
	Listen netip.AddrPort
	// Origin is the web server's base URL (http://IP[:port], an IP literal).
	Origin string
	// InfoServer, when set, is the file-info server's base URL, queried
	// directly instead of through the web server (claim 4).
	InfoServer string
	// CacheDir holds the verified files (<id><ext>), their metainfo
	// (<id>.torrent) and, under .tmp/, the downloads in progress.
	CacheDir string
	// UploadRate and DownloadRate cap the peer's BitTorrent upload and the
	// whole download (peers, web seed and the HTTP-only path together), in
	// bytes per second; 0 is no cap.
	UploadRate, DownloadRate int64
	// StallTimeout ends a download that makes no progress for this long
	// (with a "stalled" report when bad pieces were counted). Default 30 s.
	StallTimeout time.Duration
	// CheckPlayable is the playability check (step 4's last part); nil is
	// media.CheckPlayable, with ffprobe when installed. Callers whose player
	// takes other formats set their own.
	CheckPlayable func(ctx context.Context, path string) error
	// Logger receives the manager's and the torrent library's log; nil
	// discards it.
	Logger *slog.Logger
}

// DefaultStallTimeout is Options.StallTimeout's default.
const DefaultStallTimeout = 30 * time.Second

// requestTimeout bounds each small request to the origin (info, metainfo,
// report).
const requestTimeout = 15 * time.Second

func (o *Options) validate() error {
	if o.Net == nil {
		return errors.New("p2sp client: Options.Net is required")
	}
	if !o.Listen.IsValid() {
		return errors.New("p2sp client: Options.Listen is required (the BitTorrent listener's address)")
	}
	if err := checkBaseURL("Origin", o.Origin); err != nil {
		return err
	}
	if o.InfoServer != "" {
		if err := checkBaseURL("InfoServer", o.InfoServer); err != nil {
			return err
		}
	}
	if o.CacheDir == "" {
		return errors.New("p2sp client: Options.CacheDir is required")
	}
	if o.UploadRate < 0 || o.DownloadRate < 0 {
		return errors.New("p2sp client: negative rate")
	}
	if o.StallTimeout < 0 {
		return errors.New("p2sp client: negative StallTimeout")
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.CheckPlayable == nil {
		o.CheckPlayable = defaultCheckPlayable
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Origin = strings.TrimSuffix(o.Origin, "/")
	o.InfoServer = strings.TrimSuffix(o.InfoServer, "/")
	return nil
}

// checkBaseURL accepts http://IP[:port][/path]: Network dials IP literals only.
func checkBaseURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("p2sp client: Options.%s %q: want http://IP[:port]", field, s)
	}
	if _, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err != nil {
		return fmt.Errorf("p2sp client: Options.%s %q: the host must be an IP literal", field, s)
	}
	return nil
}

// Manager is the media manager and the peer of one cache directory.
type Manager struct {
	opts     Options
	log      *slog.Logger
	http     *http.Client
	cl       *torrent.Client
	listener net.Listener
	down     *rate.Limiter // nil: no cap
	// life ends when the Manager closes, and with it every fetch.
	life    context.Context
	endLife context.CancelFunc

	mu       sync.Mutex
	watches  map[*torrent.Torrent]*watch // fetches in progress, for the callbacks
	inflight map[p2sp.FileID]*flight     // one fetch per id
	seeding  map[p2sp.FileID]*torrent.Torrent
	ids      map[metainfo.Hash]p2sp.FileID // every torrent's id, for keepInSwarm
	closed   bool
}

// New checks opts, creates the cache directory and starts the BitTorrent
// client on opts.Listen. Close it.
func New(opts Options) (*Manager, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opts.CacheDir, tmpDirName), 0o755); err != nil {
		return nil, fmt.Errorf("p2sp client: cache: %w", err)
	}
	m := &Manager{
		opts:     opts,
		log:      opts.Logger,
		watches:  map[*torrent.Torrent]*watch{},
		inflight: map[p2sp.FileID]*flight{},
		seeding:  map[p2sp.FileID]*torrent.Torrent{},
		ids:      map[metainfo.Hash]p2sp.FileID{},
	}
	m.life, m.endLife = context.WithCancel(context.Background())
	dial := lifeDialer{net: opts.Net, life: m.life}
	m.http = &http.Client{Transport: &http.Transport{
		DialContext:           dial.DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
	}}
	if opts.DownloadRate > 0 {
		m.down = NewDownloadLimiter(opts.DownloadRate)
	}

	cfg := torrent.NewDefaultClientConfig()
	// Every socket is ours (Options.Net): no built-in TCP, no uTP, no DHT
	// (no UDP socket at all), no UPnP/NAT-PMP, no PEX, no WebTorrent; LPD is
	// off while LocalServiceDiscovery is nil.
	cfg.DisableTCP = true
	cfg.DisableUTP = true
	cfg.NoDHT = true
	cfg.NoDefaultPortForwarding = true
	cfg.DisablePEX = true
	cfg.DisableWebtorrent = true
	cfg.Seed = true // the peer keeps seeding what it fetched (claims 5-6)
	cfg.DataDir = filepath.Join(opts.CacheDir, tmpDirName)
	// Every torrent gets its own storage; this default is never used for data.
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir: cfg.DataDir, PieceCompletion: storage.NewMapPieceCompletion(), DisableMmap: true})
	cfg.HTTPDialContext = dial.DialContext    // web seeds (BEP 19)
	cfg.TrackerDialContext = dial.DialContext // HTTP announces
	cfg.HttpRequestDirector = m.keepInSwarm
	cfg.Slogger = opts.Logger.With("lib", "torrent")
	if opts.UploadRate > 0 {
		cfg.UploadRateLimiter = newLimiter(opts.UploadRate)
	}
	cfg.DownloadRateLimiter = m.down // peers and web-seed bodies together
	cfg.Callbacks.ReceivedUsefulData = append(cfg.Callbacks.ReceivedUsefulData, m.receivedUsefulData)
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		m.endLife()
		return nil, fmt.Errorf("p2sp client: torrent client: %w", err)
	}
	l, err := opts.Net.Listen(opts.Listen)
	if err != nil {
		cl.Close()
		m.endLife()
		return nil, fmt.Errorf("p2sp client: listen %v: %w", opts.Listen, err)
	}
	cl.AddListener(l)
	cl.AddDialer(torrent.NetworkDialer{Network: "tcp", Dialer: dial})
	m.cl, m.listener = cl, l
	return m, nil
}

// lifeDialer dials on net until the Manager closes: net/http and the
// torrent library may leave a dial running after its request is gone (to a
// peer that never answers, on a stack whose clock may never advance again),
// and Close must end it.
type lifeDialer struct {
	net  p2sp.Network
	life context.Context
}

func (d lifeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.life, cancel)
	defer stop()
	return d.net.DialContext(ctx, network, addr)
}

// newLimiter is a byte-rate token bucket whose burst holds at least a few
// 16 KiB chunks (the library asks for a whole chunk at once) and about a
// tenth of a second at the rate.
func newLimiter(bytesPerSecond int64) *rate.Limiter {
	burst := min(max(bytesPerSecond/10, 64<<10), 1<<20)
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(burst))
}

// Addr is the BitTorrent listener's address (with the port chosen when
// Options.Listen's was 0).
func (m *Manager) Addr() netip.AddrPort {
	if a, ok := m.listener.Addr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(m.listener.Addr().String())
	return ap
}

// Close stops the BitTorrent client (seeding ends, fetches in progress
// fail) and its listener.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.endLife()
	m.cl.Close()
	<-m.cl.Closed()
	err := m.listener.Close()
	m.http.CloseIdleConnections()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// get GETs url and returns its body (at most limit bytes), or errNotFound
// for a 404.
func (m *Manager) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s%s", url, resp.Status, errorBody(resp.Body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("GET %s: answer longer than %d bytes", url, limit)
	}
	return body, nil
}

var errNotFound = errors.New("not found")

// errorBody returns ": message" from a JSON error answer {"error": "..."},
// or the start of a text one.
func errorBody(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if msg, ok := strings.CutPrefix(s, `{"error":`); ok {
		s = strings.Trim(strings.TrimSuffix(msg, "}"), ` "`)
	}
	return ": " + s
}

// downloadReadSize is the least the download cap lets the library read at
// once: about one segment, so that each read reopens the TCP window by a
// segment and the sender's bytes arrive spread out at the cap, not in
// bursts that queue voice behind them on the link (TestCoexistence in
// p2sp/p2spsim).
const downloadReadSize = 1460

// NewDownloadLimiter is the token bucket a Manager caps its download with.
// anacrolix reads peers and web seeds through it at most a burst at a time
// (it never asks for more at once), so the burst is small: a millisecond
// at the rate, at least downloadReadSize.
func NewDownloadLimiter(bytesPerSecond int64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(max(bytesPerSecond/1000, downloadReadSize)))
}

// ReceiveBuffer is the TCP receive buffer that keeps a download capped at
// bytesPerSecond from queueing voice behind it: what the cap moves in
// 32 ms, at least 32 KiB. A larger buffer lets the sender's slow start
// (and each burst after the window reopens) fill a link's queue before
// the cap holds it back; a smaller one holds a connection below the cap
// once its round trip is longer than the buffer lasts (32 ms here).
// p2sp.LimitReceiveBuffer applies it to a stack.
func ReceiveBuffer(bytesPerSecond int64) int {
	return int(max(bytesPerSecond*32/1000, 32<<10))
}
