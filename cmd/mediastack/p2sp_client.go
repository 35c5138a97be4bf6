package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
	"github.com/mediastack/mediastack/p2sp/playback"
	"github.com/mediastack/mediastack/stack"
)

// managerConfig is what fetch and peer share: the node, and the client's
// flags.
type managerConfig struct {
	node nodeConfig
	clientConfig
}

// clientConfig is a client.Manager's flags: the origin, the cache, the
// BitTorrent listener and the rate caps. `p2sp fetch` and `p2sp peer`
// register them bare (--origin), serve with the prefix "p2sp-"
// (--p2sp-origin).
type clientConfig struct {
	prefix   string
	origin   string
	info     string
	cache    string
	listen   string
	upRate   string
	downRate string
	stall    time.Duration
	listenAP netip.AddrPort
	up, down int64
}

func (c *managerConfig) registerFlags(fs *flag.FlagSet) {
	c.clientConfig.registerFlags(fs, "")
	c.node.registerFlags(fs)
}

func (c *clientConfig) registerFlags(fs *flag.FlagSet, prefix string) {
	c.prefix = prefix
	fs.StringVar(&c.origin, prefix+"origin", "", "the web server's base `URL`, http://IP[:PORT]")
	fs.StringVar(&c.info, prefix+"info", "", "the file-info server's base `URL`, asked directly instead of through the web server (claim 4) (default: through --"+prefix+"origin)")
	fs.StringVar(&c.cache, prefix+"cache", "", "the cache `DIR`: verified files, their metainfo, downloads in progress under .tmp/")
	fs.StringVar(&c.listen, prefix+"listen", "", "the BitTorrent listener, `IP:PORT` (port 0: any); the node's own address, which peers and the tracker see")
	fs.StringVar(&c.upRate, prefix+"up-rate", "0", "cap BitTorrent upload at `RATE` bytes/s (k, M, G: ×1000) so P2P never starves voice on the link (default 0: no cap)")
	fs.StringVar(&c.downRate, prefix+"down-rate", "0", "cap the whole download (peers and web) at `RATE` bytes/s; on mediastack's stack it also limits the stack's TCP receive buffer "+
		"to 32 ms at RATE (at least 32 KiB), so that a download at its cap arrives spread out and leaves voice on the link unqueued (default 0: no cap)")
	fs.DurationVar(&c.stall, prefix+"stall-timeout", client.DefaultStallTimeout, "end a download that makes no progress for `TIME` with a report")
}

// clientFlags are the flags clientConfig registers, without a prefix.
var clientFlags = []string{"origin", "info", "cache", "listen", "up-rate", "down-rate", "stall-timeout"}

// managerFlags are fetch's and peer's, for their help: the client's.
var managerFlags = clientFlags

// validate checks the flags; a listener left empty is defaultListen (none:
// --listen is required).
func (c *clientConfig) validate(defaultListen netip.AddrPort) error {
	p := "--" + c.prefix
	switch {
	case c.origin == "":
		return usageErrorf("%sorigin URL is required (the web server, e.g. http://198.51.100.10)", p)
	case c.cache == "":
		return usageErrorf("%scache DIR is required", p)
	case c.listen == "" && !defaultListen.IsValid():
		return usageErrorf("%slisten IP:PORT is required (the BitTorrent listener on the node's own address)", p)
	case c.stall <= 0:
		return usageErrorf("%sstall-timeout must be positive", p)
	}
	var err error
	c.listenAP = defaultListen
	if c.listen != "" {
		if c.listenAP, err = parseAddrPort(c.prefix+"listen", c.listen); err != nil {
			return err
		}
	}
	if c.up, err = parseRate(c.prefix+"up-rate", c.upRate); err != nil {
		return err
	}
	c.down, err = parseRate(c.prefix+"down-rate", c.downRate)
	return err
}

// options are the Manager's options on net.
func (c *clientConfig) options(net p2sp.Network, log *slog.Logger) client.Options {
	return client.Options{
		Net: net, Listen: c.listenAP, Origin: c.origin, InfoServer: c.info, CacheDir: c.cache,
		UploadRate: c.up, DownloadRate: c.down, StallTimeout: c.stall, Logger: log,
	}
}

// limitReceiveBuffer limits st's TCP receive buffer for the download cap
// (none: nothing): a download at its cap must arrive spread out, not in
// window bursts that queue voice behind them on the link (p2sp/p2spsim's
// TestCoexistence).
func (c *clientConfig) limitReceiveBuffer(st *stack.Stack, log *slog.Logger) error {
	if c.down <= 0 {
		return nil
	}
	size := client.ReceiveBuffer(c.down)
	if err := p2sp.LimitReceiveBuffer(st, size); err != nil {
		return err
	}
	log.Info("tcp receive buffer limited for --"+c.prefix+"down-rate", "bytes", size)
	return nil
}

// open starts the node and the manager; close closes both.
func (c *managerConfig) open(stderr io.Writer) (m *client.Manager, n *node, log *slog.Logger, err error) {
	if err := c.clientConfig.validate(netip.AddrPort{}); err != nil {
		return nil, nil, nil, err
	}
	if log, err = c.node.logging.logger(stderr); err != nil {
		return nil, nil, nil, err
	}
	if n, err = c.node.open(log, c.listenAP.Addr()); err != nil {
		return nil, nil, nil, err
	}
	if n.host != nil {
		if err := c.limitReceiveBuffer(n.host.Stack(), log); err != nil {
			n.close()
			return nil, nil, nil, err
		}
	}
	m, err = client.New(c.options(n.net, log))
	if err != nil {
		n.close()
		return nil, nil, nil, err
	}
	return m, n, log, nil
}

type fetchConfig struct {
	manager  managerConfig
	timeout  time.Duration
	jsonOut  bool
	progress bool
	play     string
	player   string
	verified bool
	rtpPort  uint
}

func runP2SPFetch(args []string, stdout, stderr io.Writer) error {
	var cfg fetchConfig
	fs := newFlagSet("p2sp fetch ID", p2spFetchHelp, stdout)
	cfg.manager.registerFlags(fs)
	fs.DurationVar(&cfg.timeout, "timeout", 0, "give up after `TIME` (default 0: no limit; --stall-timeout still ends a stuck download)")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the result (or the failure report and its answer) as JSON instead of text")
	fs.BoolVar(&cfg.progress, "progress", true, "a progress line on stderr: bytes, rate, sources (default on)")
	fs.StringVar(&cfg.play, "play", "", "send the file as RTP to `rtp://HOST:PORT` while it downloads, from when its header (an MP4's index, fetched first) has arrived: WAV as PCMU or L16 and Ogg Opus through a media port (the fast path on mediastack's stack), MP4 and the rest through ffmpeg")
	fs.StringVar(&cfg.player, "player", "", "run this player `CMD` (no shell): without \"{}\" it reads the file on its stdin while it downloads (\"ffplay -nodisp -autoexit -\"); with \"{}\" it is given the path, once the file is verified")
	fs.BoolVar(&cfg.verified, "play-verified", false, "start --play or --player only once the file is verified and cached (otherwise a failed verification stops the playback at once)")
	fs.UintVar(&cfg.rtpPort, "rtp-port", 40000, "the local UDP `PORT` --play sends from")
	var idArg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		idArg, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if idArg == "" {
		return usageErrorf("want the file ID first: mediastack p2sp fetch ID --origin URL --cache DIR --listen IP:PORT")
	}
	id, err := p2sp.ParseFileID(idArg)
	if err != nil {
		return usageError{err}
	}
	if cfg.timeout < 0 {
		return usageErrorf("--timeout must not be negative")
	}
	play, err := cfg.playTarget()
	if err != nil {
		return err
	}
	if play.RTP.IsValid() {
		cfg.manager.node.mediaPort = uint16(cfg.rtpPort)
	}
	m, n, log, err := cfg.manager.open(stderr)
	if err != nil {
		return err
	}
	defer n.close()
	defer m.Close()
	ctx, stop := signalContext()
	defer stop()
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-n.linkFailed:
			cancel(err)
		case <-ctx.Done():
		}
	}()
	var line progressLine
	var onProgress func(client.Progress)
	if cfg.progress {
		line = newProgressLine(stderr)
		onProgress = func(p client.Progress) { line.show(formatProgress(p)) }
	}
	// done reports the fetch's verdict: the result, or the failure (with
	// its report and the origin's notice).
	done := func(res client.Result, err error) error {
		line.end()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
				err = cause
			}
			var fe *client.FetchError
			if cfg.jsonOut && errors.As(err, &fe) {
				writeJSON(stdout, map[string]any{"error": err.Error(), "report": fe.Report, "answer": fe.Answer})
			}
			return err
		}
		if cfg.jsonOut {
			return writeJSON(stdout, fetchJSON(res))
		}
		_, err = fmt.Fprint(stdout, formatResult(id, res))
		return err
	}
	playing := play.RTP.IsValid() || play.Command != nil
	if !playing || cfg.verified || play.NeedsPath() {
		res, err := m.Fetch(ctx, id, onProgress)
		if err := done(res, err); err != nil || !playing {
			return err
		}
		return cfg.playFile(ctx, play, n, res.Path, log)
	}
	// Play while downloading; the verdict still decides.
	s, err := m.Open(ctx, id, onProgress)
	if err != nil {
		return done(client.Result{}, err)
	}
	defer s.Close()
	o, closeSender, err := cfg.rtpSender(play, n)
	if err != nil {
		return err
	}
	defer closeSender()
	var verdict error
	st, err := play.PlayWhileVerifying(ctx, s, o, func(ctx context.Context) error {
		verdict = done(s.Wait(ctx))
		return verdict
	})
	switch {
	case verdict != nil:
		return verdict // reported already
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		return fmt.Errorf("playing %s: %w", id, err)
	}
	cfg.logPlayed(log, play, st)
	return nil
}

// playTarget checks --play, --player, --play-verified and --rtp-port.
func (cfg *fetchConfig) playTarget() (playback.Target, error) {
	switch {
	case cfg.play != "" && cfg.player != "":
		return playback.Target{}, usageErrorf("--play and --player: pick one")
	case cfg.verified && cfg.play == "" && cfg.player == "":
		return playback.Target{}, usageErrorf("--play-verified needs --play or --player")
	case cfg.rtpPort == 0 || cfg.rtpPort > 65535:
		return playback.Target{}, usageErrorf("--rtp-port %d out of range [1, 65535]", cfg.rtpPort)
	case cfg.play != "":
		ap, err := playback.ParseRTPURL(cfg.play)
		if err != nil {
			return playback.Target{}, usageErrorf("--play: %v", err)
		}
		return playback.Target{RTP: ap}, nil
	case cfg.player != "":
		t, err := playback.ParseTarget(cfg.player)
		if err != nil || t.RTP.IsValid() {
			return playback.Target{}, usageErrorf("--player %q: want a command (rtp:// goes to --play)", cfg.player)
		}
		return t, nil
	}
	return playback.Target{}, nil
}

// rtpSender opens what --play sends from: a media port on mediastack's
// stack (the fast path), a kernel UDP socket on the host's; nothing for a
// player command.
func (cfg *fetchConfig) rtpSender(t playback.Target, n *node) (playback.RTPOptions, func(), error) {
	var o playback.RTPOptions
	if !t.RTP.IsValid() {
		return o, func() {}, nil
	}
	if n.host != nil {
		p, err := n.host.Ports().Open(uint16(cfg.rtpPort))
		if err != nil {
			return o, nil, fmt.Errorf("--play: media port %d: %w", cfg.rtpPort, err)
		}
		o.Sender = p
		return o, func() { p.Close() }, nil
	}
	local := netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(cfg.rtpPort))
	if t.RTP.Addr().Is4() {
		local = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(cfg.rtpPort))
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return o, nil, fmt.Errorf("--play: %w", err)
	}
	o.Sender = c
	return o, func() { c.Close() }, nil
}

// playFile hands the verified file to the player or sends it as RTP.
func (cfg *fetchConfig) playFile(ctx context.Context, t playback.Target, n *node, path string, log *slog.Logger) error {
	o, closeSender, err := cfg.rtpSender(t, n)
	if err != nil {
		return err
	}
	defer closeSender()
	st, err := t.Play(ctx, path, o)
	if err != nil {
		return fmt.Errorf("playing %s: %w", path, err)
	}
	cfg.logPlayed(log, t, st)
	return nil
}

func (cfg *fetchConfig) logPlayed(log *slog.Logger, t playback.Target, st playback.Stats) {
	if t.RTP.IsValid() {
		log.Info("played as RTP", "dest", t.RTP.String(), "codec", st.Codec, "packets", st.Packets, "duration", st.Duration.String())
	}
}

// fetchJSON is --json's form of a result.
func fetchJSON(res client.Result) map[string]any {
	banned := make([]string, len(res.Banned))
	for i, a := range res.Banned {
		banned[i] = a.String()
	}
	out := map[string]any{
		"path": res.Path, "method": res.Method, "record": res.Record, "sources": res.Sources,
		"bad_pieces": res.BadPieces, "banned": banned, "elapsed_ns": res.Elapsed,
	}
	if res.Fallback != "" {
		out["fallback"] = res.Fallback
	}
	if res.Reported != nil {
		out["reported"] = res.Reported
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// formatProgress is the progress line: bytes, rate, sources.
func formatProgress(p client.Progress) string {
	size := "?"
	if p.Size > 0 {
		size = fmt.Sprintf("%s (%.0f%%)", mb(p.Size), 100*float64(p.Done)/float64(p.Size))
	}
	s := fmt.Sprintf("%s %s of %s at %s/s", p.Method, mb(p.Done), size, mb(int64(p.Rate)))
	if src := formatSources(p.Sources); src != "" {
		s += "; " + src
	}
	if p.BadPieces > 0 {
		s += fmt.Sprintf("; %d bad pieces", p.BadPieces)
	}
	return s
}

// formatResult is fetch's closing text.
func formatResult(id p2sp.FileID, res client.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s in %s: %s\n", id, res.Method, res.Elapsed.Round(time.Millisecond), res.Path)
	if src := formatSources(res.Sources); src != "" {
		fmt.Fprintf(&b, "sources: %s\n", src)
	}
	if res.Fallback != "" {
		fmt.Fprintf(&b, "HTTP only: %s\n", res.Fallback)
	}
	if res.BadPieces > 0 || len(res.Banned) > 0 {
		fmt.Fprintf(&b, "bad pieces: %d; banned: %v\n", res.BadPieces, res.Banned)
	}
	if res.Reported != nil {
		fmt.Fprintf(&b, "reported: %s: %s\n", res.Reported.Status, res.Reported.Notice)
	}
	return b.String()
}

// formatSources lists the sources, the web first, then peers by address.
func formatSources(sources map[string]int64) string {
	var keys []string
	for k := range sources {
		if k != client.WebSource {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if _, ok := sources[client.WebSource]; ok {
		keys = append([]string{client.WebSource}, keys...)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + mb(sources[k])
	}
	return strings.Join(parts, ", ")
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// progressLine rewrites one line on a terminal and prints one line per
// update elsewhere (a log, a test).
type progressLine struct {
	w        io.Writer
	terminal bool
	shown    bool
}

func newProgressLine(w io.Writer) progressLine {
	f, ok := w.(*os.File)
	terminal := false
	if ok {
		if fi, err := f.Stat(); err == nil {
			terminal = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	return progressLine{w: w, terminal: terminal}
}

func (l *progressLine) show(s string) {
	if l.terminal {
		fmt.Fprintf(l.w, "\r\033[K%s", s)
	} else {
		fmt.Fprintln(l.w, s)
	}
	l.shown = true
}

func (l *progressLine) end() {
	if l.terminal && l.shown {
		fmt.Fprintln(l.w)
	}
}

func runP2SPPeer(args []string, stdout, stderr io.Writer) error {
	var cfg managerConfig
	fs := newFlagSet("p2sp peer", p2spPeerHelp, stdout)
	cfg.registerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, node, log, err := cfg.open(stderr)
	if err != nil {
		return err
	}
	defer node.close()
	defer m.Close()
	ctx, stop := signalContext()
	defer stop()
	n, err := m.SeedCache(ctx)
	if err != nil {
		return err
	}
	log.Info("seeding the cache", "files", n, "cache", cfg.cache, "listen", m.Addr().String(), "up_rate", cfg.up, "down_rate", cfg.down)
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", "signal")
		return nil
	case err := <-node.linkFailed:
		return err
	}
}
