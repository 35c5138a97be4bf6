// Package p2spnetns runs P2SP nodes as `mediastack p2sp` processes, each in
// a network namespace of its own on a bridge, every node's egress capped
// with tc tbf (internal/netns.Switched): an origin, three peers, a client on
// the host's stack and a client on mediastack's stack over a TAP bridged in
// its namespace (the cap on its veth). The kernel-peer tests in
// cmd/mediastack and `mediastack bench --only p2sp` use it. Root only.
//
//	lan, err := p2spnetns.New(p2spnetns.Options{Binary: exe, Rate: 50e6, Files: files})
//	defer lan.Close()
//	err = lan.SeedPeers(id)
//	res, err := lan.Fetch(p2spnetns.Client, id)
package p2spnetns

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/anacrolix/torrent/bencode"

	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/p2sp"
)

// Node names.
const (
	Origin    = "origin"
	Client    = "client"  // on the host's stack
	TAPClient = "tclient" // on mediastack's stack over a TAP (Options.TAPClient)
)

// Peer returns the name of peer i (0, 1, 2).
func Peer(i int) string { return "peer" + strconv.Itoa(i+1) }

// Peers is how many peers a LAN has.
const Peers = 3

// Host numbers in 198.51.100.0/24 and 2001:db8:100::/64.
const (
	HostWeb    = 10 // the origin's web server
	HostInfo   = 11 // the origin's file-info server
	HostPeer   = 21 // peer i is HostPeer+i
	HostClient = 30
	HostTAP    = 31
)

// BitTorrentPort is every client's and peer's BitTorrent port.
const BitTorrentPort = 6881

// TAPName is the TAP of the client on mediastack's stack.
const TAPName = "tapc"

// Options configure a LAN.
type Options struct {
	// Binary is the mediastack command.
	Binary string
	// Rate caps every node's egress in bits per second (0: no cap).
	Rate int64
	// V6 makes every URL and listener IPv6 (the nodes have both families).
	V6 bool
	// TAPClient adds the client on mediastack's stack.
	TAPClient bool
	// Files are published by the origin: name -> bytes.
	Files map[string][]byte
	// HTTPOnly are globs of files published without P2P info.
	HTTPOnly []string
	// Timeout bounds each fetch (default 5 minutes).
	Timeout time.Duration
}

// LAN is the namespaces and the processes running in them.
type LAN struct {
	*netns.Switched
	opts   Options
	work   string
	clean  netns.Cleanup
	procs  []*netns.Process
	origin *netns.Process
	caches map[string]string
}

// New builds the namespaces and starts the origin; it returns once the
// file-info server answers. Close it.
func New(opts Options) (_ *LAN, err error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	l := &LAN{opts: opts, caches: map[string]string{}}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.work, err = os.MkdirTemp("", "mediastack-p2sp-"); err != nil {
		return nil, err
	}
	nodes := []netns.SwitchNode{{Name: Origin, Rate: opts.Rate, Addrs: prefixes(HostWeb, HostInfo)}}
	for i := range Peers {
		nodes = append(nodes, netns.SwitchNode{Name: Peer(i), Rate: opts.Rate, Addrs: prefixes(byte(HostPeer + i))})
	}
	nodes = append(nodes, netns.SwitchNode{Name: Client, Rate: opts.Rate, Addrs: prefixes(HostClient)})
	if opts.TAPClient {
		nodes = append(nodes, netns.SwitchNode{Name: TAPClient, Rate: opts.Rate, Bridged: true})
	}
	if l.Switched, err = netns.NewSwitched(&l.clean, netns.UniqueName("msp"), nodes...); err != nil {
		return nil, err
	}
	if opts.TAPClient {
		ns := l.Nodes[TAPClient]
		// The TAP exists (and is in the bridge) before mediastack attaches
		// to it, so no early frame is lost.
		if out, err := ns.IP("tuntap", "add", "dev", TAPName, "mode", "tap"); err != nil {
			return nil, fmt.Errorf("ip tuntap add: %w: %s", err, out)
		}
		if err := l.Bridge(TAPClient, TAPName); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(l.work, "published")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	for name, b := range opts.Files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	args := []string{opts.Binary, "p2sp", "origin", "--dir", dir, "--log-level", "warn",
		"--web", l.hostPort(HostWeb, 80), "--info", l.hostPort(HostInfo, 80)}
	for _, g := range opts.HTTPOnly {
		args = append(args, "--http-only", g)
	}
	if l.origin, err = l.Start(Origin, args...); err != nil {
		return nil, err
	}
	return l, l.WaitHTTP(l.InfoURL() + "/healthz")
}

// PublishedDir is the origin's folder.
func (l *LAN) PublishedDir() string { return filepath.Join(l.work, "published") }

// Close kills every process and deletes every namespace and the files.
func (l *LAN) Close() error {
	for _, p := range l.procs {
		p.Kill()
	}
	err := l.clean.Run()
	if l.work != "" {
		err = errors.Join(err, os.RemoveAll(l.work))
	}
	return err
}

// Addr is the address of host number h in the LAN's family.
func (l *LAN) Addr(h byte) netip.Addr { return NodeAddr(h, l.opts.V6) }

// NodeAddr is the address of host number h.
func NodeAddr(h byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 15: h})
	}
	return netip.AddrFrom4([4]byte{198, 51, 100, h})
}

func prefixes(hosts ...byte) []netip.Prefix {
	var p []netip.Prefix
	for _, h := range hosts {
		p = append(p, netip.PrefixFrom(NodeAddr(h, false), 24), netip.PrefixFrom(NodeAddr(h, true), 64))
	}
	return p
}

func (l *LAN) hostPort(h byte, port uint16) string {
	return netip.AddrPortFrom(l.Addr(h), port).String()
}

// WebURL and InfoURL are the origin's two servers.
func (l *LAN) WebURL() string  { return "http://" + l.hostPort(HostWeb, 80) }
func (l *LAN) InfoURL() string { return "http://" + l.hostPort(HostInfo, 80) }

// Start runs args in node's namespace until Close.
func (l *LAN) Start(node string, args ...string) (*netns.Process, error) {
	p, err := l.Nodes[node].Start(args...)
	if err != nil {
		return nil, err
	}
	l.procs = append(l.procs, p)
	return p, nil
}

// WaitHTTP waits until url answers 200 to curl from peer1's namespace.
func (l *LAN) WaitHTTP(url string) error {
	from := l.Nodes[Peer(0)]
	return waitRunning(l.origin, "the origin answering "+url, func() error {
		if out, err := from.Exec("curl", "-sf", "-o", "/dev/null", "--max-time", "5", url); err != nil {
			return fmt.Errorf("%w: %s", netns.ErrNotYet, out)
		}
		return nil
	})
}

// waitRunning waits for cond while p runs; p exiting ends the wait with an
// error holding its output.
func waitRunning(p *netns.Process, what string, cond func() error) error {
	var exited bool
	err := netns.WaitFor(netns.StateTimeout, what, func() error {
		select {
		case <-p.Done():
			exited = true
			return nil
		default:
		}
		return cond()
	})
	if exited {
		return fmt.Errorf("waiting for %s: the process exited: %v: %s", what, p.Err(), strings.TrimSpace(p.Output()))
	}
	return err
}

// host is node's host number.
func host(node string) byte {
	switch node {
	case Client:
		return HostClient
	case TAPClient:
		return HostTAP
	}
	i, _ := strconv.Atoi(strings.TrimPrefix(node, "peer"))
	return byte(HostPeer + i - 1)
}

// ManagerArgs are fetch's and peer's flags for node: its cache (one per
// node, kept across calls), listener and, for the TAP client, its link.
func (l *LAN) ManagerArgs(node string) []string {
	cache, ok := l.caches[node]
	if !ok {
		cache = filepath.Join(l.work, "cache-"+node)
		l.caches[node] = cache
	}
	args := []string{"--origin", l.WebURL(), "--cache", cache,
		"--listen", l.hostPort(host(node), BitTorrentPort), "--log-level", "warn"}
	if node == TAPClient {
		bits := 24
		if l.opts.V6 {
			bits = 64
		}
		args = append(args, "--link", "tap:"+TAPName, "--addr", netip.PrefixFrom(l.Addr(HostTAP), bits).String())
	}
	return args
}

// ClearCache empties node's cache, for another fetch of the same file.
func (l *LAN) ClearCache(node string) error {
	if c, ok := l.caches[node]; ok {
		return os.RemoveAll(c)
	}
	return nil
}

// Result is `p2sp fetch --json`'s answer, with the process's CPU time.
type Result struct {
	Path      string           `json:"path"`
	Method    string           `json:"method"`
	Sources   map[string]int64 `json:"sources"`
	BadPieces int              `json:"bad_pieces"`
	Banned    []string         `json:"banned"`
	Elapsed   time.Duration    `json:"elapsed_ns"`
	Error     string           `json:"error"`
	// CPU is the fetch process's user and system time.
	CPU time.Duration `json:"-"`
}

// Fetch runs `p2sp fetch ID` in node (extra flags after node's own) and
// returns its result.
func (l *LAN) Fetch(node string, id p2sp.FileID, extra ...string) (Result, error) {
	args := append([]string{l.opts.Binary, "p2sp", "fetch", string(id), "--json", "--progress=false",
		"--timeout", l.opts.Timeout.String()}, l.ManagerArgs(node)...)
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.Timeout+time.Minute)
	defer cancel()
	cmd := l.Nodes[node].Command(ctx, append(args, extra...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var res Result
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			if jerr := json.Unmarshal([]byte(line), &res); jerr != nil {
				return res, fmt.Errorf("%s: fetch's JSON %q: %w", node, line, jerr)
			}
		}
	}
	if cmd.ProcessState != nil {
		res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return res, fmt.Errorf("%s: fetch: %w: %s", node, err, strings.TrimSpace(out.String()))
	}
	if res.Path == "" {
		return res, fmt.Errorf("%s: fetch printed no result: %s", node, out.String())
	}
	return res, nil
}

// SeedPeers makes every peer fetch id (each from the origin and the peers
// before it) and then seed it with `p2sp peer`; it returns once all seed
// and the tracker lists them (a peer's first announce is asynchronous).
func (l *LAN) SeedPeers(id p2sp.FileID) error {
	for i := range Peers {
		if _, err := l.Fetch(Peer(i), id); err != nil {
			return err
		}
		if err := l.StartPeer(Peer(i)); err != nil {
			return err
		}
	}
	return l.WaitSwarm(id, Peers)
}

// StartPeer runs `p2sp peer` on node's cache and waits until it seeds.
func (l *LAN) StartPeer(node string) error {
	p, err := l.Start(node, append([]string{l.opts.Binary, "p2sp", "peer"}, append(l.ManagerArgs(node), "--log-level", "info")...)...)
	if err != nil {
		return err
	}
	return waitRunning(p, node+" seeding", func() error {
		if !strings.Contains(p.Output(), "seeding the cache") {
			return netns.ErrNotYet
		}
		return nil
	})
}

// TxBytes is what node's interface has sent so far.
func (l *LAN) TxBytes(node string) (int64, error) {
	b, err := l.Nodes[node].Exec("cat", "/sys/class/net/"+netns.NodeDevice+"/statistics/tx_bytes")
	if err != nil {
		return 0, fmt.Errorf("%s tx_bytes: %w: %s", node, err, b)
	}
	return strconv.ParseInt(strings.TrimSpace(b), 10, 64)
}

// PeerAddr is peer i's address.
func (l *LAN) PeerAddr(i int) netip.Addr { return l.Addr(byte(HostPeer + i)) }

// CheckSources says what is wrong with a P2SP result: not p2sp, or a
// source (the web seed, a peer) that gave nothing.
func (l *LAN) CheckSources(res Result) error {
	var errs []error
	if res.Method != "p2sp" {
		errs = append(errs, fmt.Errorf("method %q, want p2sp", res.Method))
	}
	if res.Sources["web"] <= 0 {
		errs = append(errs, fmt.Errorf("no bytes from the web seed: %v", res.Sources))
	}
	for i := range Peers {
		if a := l.PeerAddr(i).String(); res.Sources[a] <= 0 {
			errs = append(errs, fmt.Errorf("no bytes from %s (%s): %v", Peer(i), a, res.Sources))
		}
	}
	return errors.Join(errs...)
}

// WaitSwarm waits until the origin's tracker lists at least n peers of id
// (besides the client's own address), announcing from the client's
// namespace as a leecher on port 1 (nothing listens there: a peer that
// tries it is refused at once).
func (l *LAN) WaitSwarm(id p2sp.FileID, n int) error {
	var rec p2sp.Record
	client := l.Nodes[Client]
	out, err := client.Exec("curl", "-sf", "--max-time", "10", l.WebURL()+"/p2p/"+string(id))
	if err != nil {
		return fmt.Errorf("curl the record: %w: %s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil || len(rec.InfoHash) != 40 {
		return fmt.Errorf("record %q: %v", out, err)
	}
	ih, err := hex.DecodeString(rec.InfoHash)
	if err != nil {
		return err
	}
	q := url.Values{"info_hash": {string(ih)}, "peer_id": {"-MS0000-swarmcheck00"}, "port": {"1"},
		"uploaded": {"0"}, "downloaded": {"0"}, "left": {"1"}, "compact": {"1"}, "numwant": {"200"}}
	announce := l.InfoURL() + "/announce?" + q.Encode()
	return netns.WaitFor(netns.StateTimeout, fmt.Sprintf("the tracker listing %d peers", n), func() error {
		out, err := client.Exec("curl", "-sf", "--max-time", "10", announce)
		if err != nil {
			return fmt.Errorf("%w: announce: %v", netns.ErrNotYet, err)
		}
		var answer struct {
			Peers  string `bencode:"peers"`
			Peers6 string `bencode:"peers6"`
		}
		if err := bencode.Unmarshal([]byte(out), &answer); err != nil {
			return fmt.Errorf("announce answer %q: %w", out, err)
		}
		if have := len(answer.Peers)/6 + len(answer.Peers6)/18; have < n {
			return fmt.Errorf("%w: %d listed", netns.ErrNotYet, have)
		}
		return nil
	})
}
