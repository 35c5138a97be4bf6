package main

import (
	"io"
	"os"
	"time"

	"github.com/mediastack/mediastack/internal/simapp"
)

type demoConfig struct {
	duration time.Duration
	seed     uint64
	loss     float64
	delay    time.Duration
	tcpBytes int
	streams  int
	pcapFile string
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "p2sp" {
		return runDemoP2SP(args[1:], stdout, stderr)
	}
	var cfg demoConfig
	fs := newFlagSet("demo", demoHelp, stdout)
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "simulated `TIME` to run")
	fs.Uint64Var(&cfg.seed, "seed", 1, "`N`, the seed for every random choice (same seed, same run)")
	fs.Float64Var(&cfg.loss, "loss", 0.005, "`P`, the probability that a frame is lost, each way")
	fs.DurationVar(&cfg.delay, "delay", 10*time.Millisecond, "one-way `DELAY`")
	fs.IntVar(&cfg.tcpBytes, "tcp-bytes", 8<<20, "size of the TCP transfer, `N` bytes")
	fs.IntVar(&cfg.streams, "rtp-streams", 4, "`N` RTP streams (G.711, 20 ms packets) over the fast paths, 1 to 25")
	fs.StringVar(&cfg.pcapFile, "pcap", "", "write every frame to this pcap `FILE`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case cfg.duration <= 0:
		return usageErrorf("--duration must be positive")
	case cfg.loss < 0 || cfg.loss >= 1:
		return usageErrorf("--loss must be in [0, 1)")
	case cfg.delay < 0:
		return usageErrorf("--delay must not be negative")
	case cfg.tcpBytes <= 0:
		return usageErrorf("--tcp-bytes must be positive")
	case cfg.streams < 1 || cfg.streams > 25:
		return usageErrorf("--rtp-streams must be in [1, 25]")
	case cfg.seed == 0:
		return usageErrorf("--seed must not be 0")
	}
	var capture io.Writer
	if cfg.pcapFile != "" {
		f, err := os.Create(cfg.pcapFile)
		if err != nil {
			return err
		}
		defer f.Close()
		capture = f
	}
	return simapp.Demo{Duration: cfg.duration, Seed: cfg.seed, Loss: cfg.loss, Delay: cfg.delay,
		TCPBytes: cfg.tcpBytes, Streams: cfg.streams, Capture: capture}.Run(stdout)
}
