// Package p2spbench is `mediastack bench --only p2sp`: a file fetched from
// an origin alone (HTTP only) and from the origin and three peers at once
// (P2SP), every node's egress capped equally, with the client on the host's
// stack and on mediastack's (over a TAP bridged in its namespace), in
// network namespaces (p2sp/p2spnetns). internal/bench cannot import p2sp,
// so cmd/mediastack registers Suite with bench.Register.
package p2spbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mediastack/mediastack/internal/bench"
	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/p2spnetns"
	"github.com/mediastack/mediastack/p2sp/p2spsim"
)

// Sizes, caps and rounds.
const (
	FileBytes      = 100 << 20
	ShortFileBytes = 4 << 20
	// Rate caps every node's egress (bits per second): the origin alone
	// gives the client Rate, the origin and three peers 4 × Rate at best.
	Rate   = 50_000_000
	Rounds = 3
)

// Paths of the suite: where the client's bytes come from.
const (
	PathHTTPOnly bench.Path = "http-only" // the origin alone: a file published without P2P info
	PathP2SP     bench.Path = "p2sp"      // the origin's web seed and three seeding peers at once
)

// Suite is the benchmark suite "p2sp".
func Suite() bench.Suite {
	return bench.Suite{
		Name:  "p2sp",
		Title: fmt.Sprintf("P2SP file delivery: every node's egress capped at %d Mbit/s, HTTP from the origin alone vs the origin and %d peers at once (ideal %d×)", Rate/1_000_000, p2spnetns.Peers, p2spnetns.Peers+1),
		Workloads: func(cfg bench.Config) ([]bench.Workload, func() error, error) {
			return workloads(cfg)
		},
		Rounds: func(cfg bench.Config) int {
			if cfg.Short {
				return 1
			}
			return Rounds
		},
		Columns: []bench.Column{
			{Header: "MB/s", Value: func(r bench.Result) string { return fmt.Sprintf("%.2f", r.MBPerSecond) }},
			{Header: "client CPU ms/MB", Value: func(r bench.Result) string { return fmt.Sprintf("%.1f", r.CPUMsPerMB) }},
		},
		Ratios: []bench.RatioSpec{{Metric: bench.MetricMBPerSecond, Path: PathP2SP, Against: []bench.Path{PathHTTPOnly}}},
		Note: func(results []bench.Result) string {
			return "MB = 2^20 bytes. A round is one whole fetch into an empty cache, verification (pieces, SHA-256, playability) included; " +
				"the client's CPU is the fetch process's (getrusage). Target: P2SP ≥ 3.5× HTTP only on both stacks. " + cpuNote(results)
		},
	}
}

// cpuNote compares the client's CPU per MB on mediastack's stack with the
// host's, per path.
func cpuNote(results []bench.Result) string {
	var parts []string
	for _, p := range []bench.Path{PathHTTPOnly, PathP2SP} {
		var host, stack float64
		for _, r := range results {
			switch {
			case r.Path == p && strings.HasSuffix(r.Workload, "-host"):
				host = r.CPUMsPerMB
			case r.Path == p && strings.HasSuffix(r.Workload, "-stack"):
				stack = r.CPUMsPerMB
			}
		}
		if host > 0 && stack > 0 {
			parts = append(parts, fmt.Sprintf("%s: %.2f× the host's", p, stack/host))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Client CPU per MB on mediastack's stack: " + strings.Join(parts, ", ") + "."
}

// workloads builds the LAN, publishes the two files, lets the peers fetch
// and seed the P2SP one, and returns a workload per client stack.
func workloads(cfg bench.Config) ([]bench.Workload, func() error, error) {
	if err := netns.CheckPrivileges(); err != nil {
		return nil, nil, fmt.Errorf("the p2sp suite runs in network namespaces: %w", err)
	}
	if len(cfg.Helper) == 0 {
		return nil, nil, errors.New("the p2sp suite runs the mediastack command: Config.Helper is empty")
	}
	size := FileBytes
	if cfg.Short {
		size = ShortFileBytes
	}
	httpFile, p2spFile := p2spsim.SampleWAV(size, 1), p2spsim.SampleWAV(size, 2)
	httpID, _, _ := p2sp.IDOf(bytes.NewReader(httpFile))
	p2spID, _, _ := p2sp.IDOf(bytes.NewReader(p2spFile))
	cfgLog(cfg, "p2sp: building the namespaces, publishing two files of %d MiB, seeding %d peers", size>>20, p2spnetns.Peers)
	lan, err := p2spnetns.New(p2spnetns.Options{
		Binary: cfg.Helper[0], Rate: Rate, TAPClient: true,
		Files:    map[string][]byte{"http-only.wav": httpFile, "p2sp.wav": p2spFile},
		HTTPOnly: []string{"http-only.wav"},
		Timeout:  10 * time.Minute,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := lan.SeedPeers(p2spID); err != nil {
		return nil, nil, errors.Join(err, lan.Close())
	}
	var ws []bench.Workload
	for _, node := range []string{p2spnetns.Client, p2spnetns.TAPClient} {
		stackName := "host"
		if node == p2spnetns.TAPClient {
			stackName = "stack"
		}
		ws = append(ws, bench.Workload{
			Name:  fmt.Sprintf("p2sp-%dMiB-%s", size>>20, stackName),
			Paths: []bench.Path{PathHTTPOnly, PathP2SP},
			Open: func(ctx context.Context, path bench.Path) (bench.Bench, error) {
				id, n := httpID, len(httpFile)
				if path == PathP2SP {
					id, n = p2spID, len(p2spFile)
				}
				return &fetchBench{lan: lan, node: node, id: id, size: n, path: path, cfg: cfg}, nil
			},
		})
	}
	return ws, lan.Close, nil
}

func cfgLog(cfg bench.Config, format string, args ...any) {
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, format+"\n", args...)
	}
}

// fetchBench is one client node fetching one file.
type fetchBench struct {
	lan  *p2spnetns.LAN
	node string
	id   p2sp.FileID
	size int
	path bench.Path
	cfg  bench.Config
}

// sourceTries is how many times a P2SP round is fetched before a round in
// which some peer sent nothing fails the run: on a busy machine a peer's
// handshake can come after a short file is done, which measures the
// machine, not P2SP.
const sourceTries = 3

func (b *fetchBench) Round(ctx context.Context) (bench.Result, error) {
	var res p2spnetns.Result
	for try := 1; ; try++ {
		if err := b.lan.ClearCache(b.node); err != nil {
			return bench.Result{}, err
		}
		var err error
		if res, err = b.lan.Fetch(b.node, b.id); err != nil {
			return bench.Result{}, err
		}
		if b.path != PathP2SP {
			break
		}
		err = b.lan.CheckSources(res)
		if err == nil {
			break
		}
		if try == sourceTries {
			return bench.Result{}, fmt.Errorf("%d P2SP rounds in a row that did not use every source: %w", sourceTries, err)
		}
		cfgLog(b.cfg, "p2sp: %s: a round that did not use every source, fetched again: %v", b.node, err)
	}
	if fi, err := os.Stat(res.Path); err != nil || fi.Size() != int64(b.size) {
		return bench.Result{}, fmt.Errorf("fetched %s: %v", res.Path, err)
	}
	mib := float64(b.size) / (1 << 20)
	return bench.Result{
		MBPerSecond: mib / res.Elapsed.Seconds(),
		CPUMsPerMB:  float64(res.CPU.Milliseconds()) / mib,
	}, nil
}

func (b *fetchBench) Close() error { return b.lan.ClearCache(b.node) }
