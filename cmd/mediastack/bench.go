package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mediastack/mediastack/internal/bench"
)

type benchConfig struct {
	jsonFile string
	plotFile string
	rounds   int
	linkRnds int
	short    bool
	link     string
	reflect  string
	streams  string
	only     string
	relays   string
	rows     string
	quiet    bool
}

func runBench(args []string, stdout, stderr io.Writer) error {
	var cfg benchConfig
	fs := newFlagSet("bench", benchHelp, stdout)
	fs.StringVar(&cfg.jsonFile, "json", "", "also write the results as JSON to this `FILE`")
	fs.StringVar(&cfg.plotFile, "plot", "", "draw the comparison (bar chart) and the scaling (line chart) to this PNG `FILE`")
	fs.IntVar(&cfg.rounds, "rounds", 0, fmt.Sprintf("`N` rounds per path; figures are medians over them (default %d, %d with --short)", bench.DefaultRounds, bench.ShortRounds))
	fs.IntVar(&cfg.linkRnds, "link-rounds", 0, fmt.Sprintf("`N` rate searches per path over the real link, and rounds per relay row (--only relay); figures are medians over them (default %d, 1 with --short)", bench.DefaultLinkRounds))
	fs.BoolVar(&cfg.short, "short", false, "a quick run that keeps the command working (CI): few, short rounds; not for comparison")
	fs.StringVar(&cfg.streams, "streams", "", "stream counts of the scaling sweep, `N,N,...` (default 1,100,1000,10000)")
	fs.StringVar(&cfg.link, "link", "", "also benchmark over a real link with the Linux kernel as the peer: `tap|raw` (needs root)")
	fs.StringVar(&cfg.reflect, "fast-reflector", bench.ReflectorRing, "the real link's fast reflector, `ring|inline`: ring (the filter fills a Ring that another goroutine reads and answers a batch at a time, as the gonet reflector is built) or inline (answers in the filter's receive function)")
	fs.StringVar(&cfg.only, "only", "", "run only these `SUITE,...`: "+suiteNames()+" (default in-process, scaling, and link with --link)")
	fs.StringVar(&cfg.relays, "relays", "", "the relay suite's relays, `PATH,...` of mediastack-tap, mediastack-raw, gonet-tap, go-kernel, rtpengine (default all; rtpengine when installed)")
	fs.StringVar(&cfg.rows, "rows", "", "run only the rows (workloads) whose name matches this Go `REGEXP`, e.g. '^relay/(10k/500|search/500|idle/10000)$' (default all)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no progress lines on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.rounds < 0 || cfg.linkRnds < 0 {
		return usageErrorf("--rounds and --link-rounds must not be negative")
	}
	if cfg.link != "" && cfg.link != "tap" && cfg.link != "raw" {
		return usageErrorf("--link %q: want tap or raw", cfg.link)
	}
	if cfg.reflect != bench.ReflectorInline && cfg.reflect != bench.ReflectorRing {
		return usageErrorf("--fast-reflector %q: want %s or %s", cfg.reflect, bench.ReflectorInline, bench.ReflectorRing)
	}
	var streams []int
	if cfg.streams != "" {
		for _, f := range strings.Split(cfg.streams, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 40000 {
				return usageErrorf("--streams %q: want stream counts from 1 to 40000, comma-separated", cfg.streams)
			}
			streams = append(streams, n)
		}
	}
	var relays []bench.Path
	if cfg.relays != "" {
		for _, f := range strings.Split(cfg.relays, ",") {
			p := bench.Path(strings.TrimSpace(f))
			if !slices.Contains(bench.RelayPaths, p) {
				return usageErrorf("--relays %q: no relay %q", cfg.relays, p)
			}
			relays = append(relays, p)
		}
	}
	var rows *regexp.Regexp
	if cfg.rows != "" {
		var err error
		if rows, err = regexp.Compile(cfg.rows); err != nil {
			return usageErrorf("--rows %q: %v", cfg.rows, err)
		}
	}
	bc := bench.Config{Rows: rows, RelayPaths: relays, Rounds: cfg.rounds, LinkRounds: cfg.linkRnds, Short: cfg.short, Streams: streams, Link: cfg.link, FastReflector: cfg.reflect}
	if !cfg.quiet {
		bc.Log = stderr
	}
	if cfg.link != "" || strings.Contains(cfg.only, "p2sp") || strings.Contains(cfg.only, "relay") {
		// The real link's load generator, the relay suite's helpers and the
		// p2sp suite's nodes are this program.
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this program for the load generator: %w", err)
		}
		bc.Helper = []string{exe}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	suites := bench.Suites()
	if cfg.only == "" {
		// By default: the in-process part (well under a minute), and the
		// real link when --link names one. The TCP transfers move 512 MiB
		// per path and run only when asked for with --only tcp.
		suites = slices.DeleteFunc(suites, func(s bench.Suite) bool { return !defaultSuite[s.Name] })
	} else {
		var picked []bench.Suite
		for _, name := range strings.Split(cfg.only, ",") {
			i := slices.IndexFunc(suites, func(s bench.Suite) bool { return s.Name == strings.TrimSpace(name) })
			if i < 0 {
				return usageErrorf("--only %q: no suite %q (want %s)", cfg.only, name, suiteNames())
			}
			picked = append(picked, suites[i])
		}
		suites = picked
	}
	rep, err := bench.Run(ctx, bc, suites)
	if err == nil && (rep == nil || len(rep.Results) == 0) {
		return usageErrorf("nothing to run: the suites picked with --only need other flags (link: --link tap or raw)")
	}
	if rep != nil && len(rep.Results) > 0 {
		bench.Print(stdout, rep, suites)
		if werr := writeOutputs(cfg, rep); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// defaultSuite names the suites that run when --only is not given.
var defaultSuite = map[string]bool{"in-process": true, "scaling": true, "link": true}

func suiteNames() string {
	var names []string
	for _, s := range bench.Suites() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func writeOutputs(cfg benchConfig, rep *bench.Report) error {
	if cfg.jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if cfg.plotFile != "" {
		if err := bench.Plot(rep, cfg.plotFile); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	return nil
}

// runBenchHelper runs one of the benchmark's helpers (the load generator,
// the kernel reflector) inside a network namespace the bench made. Not for
// direct use.
func runBenchHelper(args []string, stdout, stderr io.Writer) error {
	return bench.RunHelper(context.Background(), args, os.Stdin, stdout, stderr)
}
