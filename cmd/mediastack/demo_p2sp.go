package main

import (
	"io"
	"time"

	"github.com/mediastack/mediastack/p2sp/p2spsim"
)

type demoP2SPConfig struct {
	seed    uint64
	size    int
	rate    float64
	peers   int
	v6      bool
	timeout time.Duration
}

// runDemoP2SP is `mediastack demo p2sp`: the P2SP method on link/sim
// (p2spsim.Demo).
func runDemoP2SP(args []string, stdout, _ io.Writer) error {
	var cfg demoP2SPConfig
	fs := newFlagSet("demo p2sp", demoP2SPHelp, stdout)
	fs.Uint64Var(&cfg.seed, "seed", 1, "`N`, the seed of the files' samples and the network's random draws")
	fs.IntVar(&cfg.size, "size", 8<<20, "each file's size, `N` bytes")
	fs.Float64Var(&cfg.rate, "rate", 16, "every node's egress cap, `MBIT` per second")
	fs.IntVar(&cfg.peers, "peers", 3, "`N` peers that fetch and seed the P2SP file, 0 to 3")
	fs.BoolVar(&cfg.v6, "ipv6", false, "run over IPv6")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "give up after `TIME`")
	fs.Usage = func() {
		demoP2SPHelp.printUsage(fs.Output(), "demo p2sp", fs)
		io.WriteString(fs.Output(), demoP2SPDeterminism)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case cfg.size < 64<<10:
		return usageErrorf("--size must be at least 65536")
	case cfg.rate <= 0:
		return usageErrorf("--rate must be positive")
	case cfg.peers < 0 || cfg.peers > 3:
		return usageErrorf("--peers must be in [0, 3]")
	case cfg.seed == 0:
		return usageErrorf("--seed must not be 0")
	case cfg.timeout <= 0:
		return usageErrorf("--timeout must be positive")
	}
	peers := cfg.peers
	if peers == 0 {
		peers = -1 // p2spsim.Demo: none
	}
	ctx, stop := signalContext()
	defer stop()
	return p2spsim.Demo{Seed: cfg.seed, Size: cfg.size, Bandwidth: int64(cfg.rate * 1e6), Peers: peers, V6: cfg.v6, Timeout: cfg.timeout}.Run(ctx, stdout)
}

// demoP2SPDeterminism closes the help: what a seed fixes and what it does
// not.
const demoP2SPDeterminism = `
What is deterministic: the steps, the files and their ids (from --seed), the methods, the
verification, and which sources take part. What is not: the times and the bytes per source.
anacrolix/torrent runs on wall-clock timers, so the simulated clock is paced against real
time (link/sim Pace) and the figures depend on the machine; plain 'mediastack demo' is
byte-for-byte reproducible for a seed, 'demo p2sp' is not.
`
