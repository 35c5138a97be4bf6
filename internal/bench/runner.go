package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Run runs every enabled suite with cfg and returns the report: each row a
// median over the rounds, each ratio taken between rows of this run.
func Run(ctx context.Context, cfg Config, suites []Suite) (*Report, error) {
	cfg = cfg.withDefaults()
	var run []Suite
	for _, s := range suites {
		if s.Enabled == nil || s.Enabled(cfg) {
			run = append(run, s)
		}
	}
	rep := &Report{Machine: Machine(), Date: time.Now().UTC().Format(time.RFC3339), Settings: cfg.settings(run)}
	for _, s := range run {
		results, err := RunSuite(ctx, cfg, s)
		rep.Results = append(rep.Results, results...)
		rep.Ratios = append(rep.Ratios, Ratios(s, results)...)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return rep, nil
}

// RunSuite runs the workloads of one suite.
func RunSuite(ctx context.Context, cfg Config, s Suite) (results []Result, err error) {
	cfg = cfg.withDefaults()
	workloads, done, err := s.Workloads(cfg)
	if err != nil {
		return nil, err
	}
	if done != nil {
		defer func() { err = errors.Join(err, done()) }()
	}
	rounds := cfg.Rounds
	if s.Rounds != nil {
		rounds = s.Rounds(cfg)
	}
	for _, w := range workloads {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		if cfg.Rows != nil && !cfg.Rows.MatchString(w.Name) {
			continue
		}
		rs, err := runWorkload(ctx, w, rounds)
		for i := range rs {
			rs[i].Suite = s.Name
		}
		if s.Derive != nil {
			s.Derive(rs)
		}
		results = append(results, rs...)
		if err != nil {
			return results, fmt.Errorf("%s: %w", w.Name, err)
		}
		cfg.logf("%-28s %s", w.Name, summary(rs))
	}
	return results, nil
}

func summary(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		switch {
		case strings.HasPrefix(r.Workload, "link") && r.PacketsPerSecond > 0:
			fmt.Fprintf(&b, " %s %s pkt/s", r.Path, si(r.PacketsPerSecond))
		case r.NsPerPacket > 0:
			fmt.Fprintf(&b, " %s %.0f ns", r.Path, r.NsPerPacket)
		case r.PacketsPerSecond > 0:
			fmt.Fprintf(&b, " %s %s pkt/s", r.Path, si(r.PacketsPerSecond))
		default:
			fmt.Fprintf(&b, " %s done", r.Path)
		}
	}
	return b.String()
}

// runWorkload opens every path of w, runs rounds rounds of each,
// interleaved, and returns a median row per path.
func runWorkload(ctx context.Context, w Workload, rounds int) (results []Result, err error) {
	benches := make([]Bench, len(w.Paths))
	defer func() {
		for _, b := range benches {
			if b != nil {
				err = errors.Join(err, b.Close())
			}
		}
	}()
	for i, p := range w.Paths {
		b, err := w.Open(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		benches[i] = b
	}
	samples := make([][]Result, len(w.Paths))
	for r := 0; r < rounds; r++ {
		// Alternate the order, so neither path always runs first.
		for k := range w.Paths {
			i := k
			if r%2 == 1 {
				i = len(w.Paths) - 1 - k
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			res, err := benches[i].Round(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s: round %d: %w", w.Paths[i], r+1, err)
			}
			samples[i] = append(samples[i], res)
		}
	}
	for i, p := range w.Paths {
		m := median(samples[i])
		m.Workload, m.Path, m.Rounds = w.Name, p, len(samples[i])
		results = append(results, m)
	}
	return results, nil
}

// median returns the per-figure median of rs; a flag is set when it was set
// in most rounds.
func median(rs []Result) Result {
	var m Result
	if len(rs) == 0 {
		return m
	}
	fields := func(r *Result) []*float64 {
		return []*float64{&r.NsPerPacket, &r.PacketsPerSecond, &r.AllocsPerPacket,
			&r.LatencyP50Micros, &r.LatencyP99Micros, &r.MBPerSecond, &r.CPUMsPerMB,
			&r.RelayCPUMicrosPerPacket, &r.TotalCPUMicrosPerPacket, &r.CtxSwitchesPerPacket, &r.RelayCPUPercent,
			&r.LatencyP999Micros, &r.Loss, &r.DeadCalls, &r.RecoveryLoss}
	}
	out := fields(&m)
	vals := make([]float64, len(rs))
	for f := range out {
		for i := range rs {
			vals[i] = *fields(&rs[i])[f]
		}
		*out[f] = medianOf(vals)
	}
	limited, tested := 0, 0
	for _, r := range rs {
		if r.GeneratorLimited {
			limited++
		}
		if r.LossFreeRateTested {
			tested++
		}
	}
	m.GeneratorLimited = 2*limited > len(rs)
	m.LossFreeRateTested = 2*tested > len(rs)
	return m
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ratios computes the suite's ratios over its results.
func Ratios(s Suite, results []Result) []Ratio {
	var out []Ratio
	for _, spec := range s.Ratios {
		for _, r := range results {
			if !spec.compares(r.Path) {
				continue
			}
			for _, against := range spec.Against {
				o, ok := find(results, r.Workload, against)
				if !ok {
					continue
				}
				a, b := spec.Metric.Get(r), spec.Metric.Get(o)
				if spec.Metric.LowerIsBetter {
					a, b = b, a
				}
				if a <= 0 || b <= 0 {
					continue
				}
				out = append(out, Ratio{Workload: r.Workload, Metric: spec.Metric.Name, Path: r.Path, Baseline: against, Value: a / b})
			}
		}
	}
	return out
}

func find(results []Result, workload string, p Path) (Result, bool) {
	for _, r := range results {
		if r.Workload == workload && r.Path == p {
			return r, true
		}
	}
	return Result{}, false
}

// settings describes cfg in one line, for the suites that run: the rounds
// each takes its medians over.
func (c Config) settings(suites []Suite) string {
	var parts []string
	inProcess := false
	for _, s := range suites {
		switch {
		case s.Name == "link":
			parts = append(parts, fmt.Sprintf("link %s, %d rate searches, fast reflector %s", c.Link, c.LinkRounds, c.FastReflector))
		case s.Rounds != nil:
			parts = append(parts, fmt.Sprintf("%s: %d rounds", s.Name, s.Rounds(c)))
		case !inProcess:
			inProcess = true
			parts = append([]string{fmt.Sprintf("%d rounds of %v", c.Rounds, c.RoundTime)}, parts...)
		}
	}
	if c.Short {
		parts = append(parts, "short")
	}
	if c.Rows != nil {
		parts = append(parts, fmt.Sprintf("rows %q", c.Rows))
	}
	return strings.Join(parts, "; ")
}

// Machine describes the machine the run happens on: CPU model, cores, Go.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
