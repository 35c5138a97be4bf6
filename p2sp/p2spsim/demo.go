package p2spsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
	"github.com/mediastack/mediastack/p2sp/origin"
)

// Demo shows the whole P2SP method on a simulated LAN: an origin, Peers
// peers and a client, every egress capped at Bandwidth. The client fetches
// one file the origin publishes without P2P info (HTTP only) and another of
// the same size with it, after the peers fetched and seeded it; the two
// times are printed side by side.
//
// What is deterministic: the steps, the file sizes and ids (from Seed), the
// methods, the verification and which sources took part. What is not: the
// times and the bytes per source, which depend on the machine (the clock is
// paced against real time).
type Demo struct {
	Seed      uint64
	Size      int   // bytes of each file (default 8 MB)
	Bandwidth int64 // bits/s of every node's egress (default 16 Mbit/s)
	Peers     int   // 0 to 3 (default 3; -1 for none)
	V6        bool  // run over IPv6
	Timeout   time.Duration
}

// Run runs the demo, writing its lines to w.
func (d Demo) Run(ctx context.Context, w io.Writer) (err error) {
	if d.Size == 0 {
		d.Size = 8 << 20
	}
	if d.Bandwidth == 0 {
		d.Bandwidth = 16_000_000
	}
	switch {
	case d.Peers == 0:
		d.Peers = 3
	case d.Peers < 0:
		d.Peers = 0
	}
	if d.Timeout == 0 {
		d.Timeout = 5 * time.Minute
	}
	if d.Peers > 3 || d.Size < 64<<10 || d.Bandwidth < 0 {
		return errors.New("p2spsim: demo wants 0-3 peers, a file of at least 64 KiB and a positive bandwidth")
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "mediastack-demo-p2sp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	published := filepath.Join(work, "published")
	if err := os.Mkdir(published, 0o755); err != nil {
		return err
	}
	httpFile, p2spFile := SampleWAV(d.Size, d.Seed), SampleWAV(d.Size, d.Seed+1)
	for name, b := range map[string][]byte{"http-only.wav": httpFile, "p2sp.wav": p2spFile} {
		if err := os.WriteFile(filepath.Join(published, name), b, 0o644); err != nil {
			return err
		}
	}
	httpID, p2spID := fileID(httpFile), fileID(p2spFile)

	nodes := []NodeOptions{{Name: "origin", Extra: 1}}
	for i := range d.Peers {
		nodes = append(nodes, NodeOptions{Name: fmt.Sprintf("peer%d", i+1)})
	}
	nodes = append(nodes, NodeOptions{Name: "client"})
	lan, err := New(Options{Seed: d.Seed, Bandwidth: d.Bandwidth}, nodes...)
	if err != nil {
		return err
	}
	defer lan.Close()
	o, err := StartOrigin(lan.Node("origin"), origin.Options{Dir: published, NoP2P: func(name string) bool { return name == "http-only.wav" }}, d.V6)
	if err != nil {
		return err
	}
	defer o.Close()

	fmt.Fprintf(w, "p2sp demo: an origin, %d peers and a client on link/sim, every egress capped at %s; two WAV files of %s\n",
		d.Peers, bits(d.Bandwidth), mb(int64(d.Size)))
	fmt.Fprintf(w, "  origin: web server %s, file-info server %s\n", o.WebURL, o.InfoURL)
	fmt.Fprintf(w, "  %s  http-only.wav (published without P2P info)\n  %s  p2sp.wav\n", httpID, p2spID)

	var managers []*client.Manager
	defer func() {
		for _, m := range managers {
			m.Close()
		}
	}()
	start := func(name string) (*client.Manager, error) {
		cache := filepath.Join(work, name)
		m, err := NewClient(lan.Node(name), o, client.Options{CacheDir: cache}, d.V6)
		if err == nil {
			managers = append(managers, m)
		}
		return m, err
	}
	for i := range d.Peers {
		// A peer fetches the file and, with the same Manager, seeds it.
		name := fmt.Sprintf("peer%d", i+1)
		m, err := start(name)
		if err != nil {
			return err
		}
		res, err := m.Fetch(ctx, p2spID, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(w, "  %-6s fetched p2sp.wav: %-4s in %5.1f s from %s; now seeding\n", name, res.Method, res.Elapsed.Seconds(), sourceList(res.Sources))
	}
	m, err := start("client")
	if err != nil {
		return err
	}
	httpRes, err := m.Fetch(ctx, httpID, nil)
	if err != nil {
		return fmt.Errorf("client, HTTP only: %w", err)
	}
	p2spRes, err := m.Fetch(ctx, p2spID, nil)
	if err != nil {
		return fmt.Errorf("client, P2SP: %w", err)
	}
	again, err := m.Fetch(ctx, p2spID, nil)
	if err != nil {
		return fmt.Errorf("client, cache: %w", err)
	}
	fmt.Fprintf(w, "  client fetched http-only.wav: %-4s in %5.1f s from %s\n", httpRes.Method, httpRes.Elapsed.Seconds(), sourceList(httpRes.Sources))
	fmt.Fprintf(w, "  client fetched p2sp.wav:      %-4s in %5.1f s from %s\n", p2spRes.Method, p2spRes.Elapsed.Seconds(), sourceList(p2spRes.Sources))
	fmt.Fprintf(w, "  client fetched p2sp.wav again: %s, no request at the origin\n", again.Method)
	fmt.Fprintf(w, "summary: HTTP only %.1f s, P2SP %.1f s: %.1fx (ideal %dx: %d sources at the same cap); every file verified (pieces, SHA-256, playable)\n",
		httpRes.Elapsed.Seconds(), p2spRes.Elapsed.Seconds(), httpRes.Elapsed.Seconds()/p2spRes.Elapsed.Seconds(), d.Peers+1, d.Peers+1)
	return nil
}

func fileID(b []byte) p2sp.FileID {
	sum := sha256.Sum256(b)
	return p2sp.FileID(hex.EncodeToString(sum[:]))
}

// sourceList names the sources: the web first, then peers by address.
func sourceList(sources map[string]int64) string {
	var peers []string
	for k := range sources {
		if k != client.WebSource {
			peers = append(peers, k)
		}
	}
	slices.Sort(peers)
	var parts []string
	if n, ok := sources[client.WebSource]; ok {
		parts = append(parts, "web "+mb(n))
	}
	for _, p := range peers {
		parts = append(parts, p+" "+mb(sources[p]))
	}
	if len(parts) == 0 {
		return "the cache"
	}
	return strings.Join(parts, ", ")
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func bits(b int64) string { return fmt.Sprintf("%g Mbit/s", float64(b)/1e6) }
