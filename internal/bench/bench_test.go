package bench

import (
	"context"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// inProcessBenches opens every path of every in-process workload (and the
// scaling sweep at 100 streams) as packet loops.
func inProcessBenches(tb testing.TB) map[string]*Loop {
	tb.Helper()
	cfg := Config{Short: true}.withDefaults()
	ws, _, err := inProcessSuite().Workloads(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	scale, _, err := scalingSuite().Workloads(Config{Short: true, Streams: []int{100}}.withDefaults())
	if err != nil {
		tb.Fatal(err)
	}
	loops := map[string]*Loop{}
	for _, w := range append(ws, scale...) {
		for _, p := range w.Paths {
			b, err := w.Open(context.Background(), p)
			if err != nil {
				tb.Fatalf("%s %s: %v", w.Name, p, err)
			}
			tb.Cleanup(func() {
				if err := b.Close(); err != nil {
					tb.Errorf("%s %s: %v", w.Name, p, err)
				}
			})
			loops[w.Name+"/"+string(p)] = b.(*Loop)
		}
	}
	return loops
}

// TestFastPathsAllocateNothing: every fast path of the comparison, as the
// bench sets it up, allocates nothing per packet; netstack's allocates.
func TestFastPathsAllocateNothing(t *testing.T) {
	for name, l := range inProcessBenches(t) {
		if err := l.Run(warmup); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// AllocsPerRun counts the whole process's allocations, netstack's
		// background timers (DAD, MLD, router solicitations on the real
		// clock) included: a loaded machine stretches the measurement
		// until one fires inside it. An allocation of the path itself
		// shows in every measurement, so the least of a few is the path's.
		allocs := math.Inf(1)
		for try := 0; try < 5 && allocs != 0; try++ {
			allocs = min(allocs, testing.AllocsPerRun(20, func() {
				if err := l.Run(32); err != nil {
					panic(err)
				}
			})/32)
		}
		switch {
		case strings.HasSuffix(name, "/"+string(PathNetstack)):
			if allocs < 1 {
				t.Errorf("%s: %v allocations per packet; netstack's path allocates", name, allocs)
			}
		case raceEnabled && (strings.HasPrefix(name, "reflect-inline/") || strings.HasPrefix(name, "scale/")):
			// The fast reflector's ReceiveFunc gets a pooled Datagram, and
			// under -race sync.Pool drops some of what it is given.
		case allocs != 0:
			t.Errorf("%s: %v allocations per packet, want 0", name, allocs)
		}
	}
}

// TestRunShort runs the in-process suites briefly and checks the rows, the
// ratios and the table: a workload on both paths, the same name on each.
func TestRunShort(t *testing.T) {
	cfg := Config{Short: true, Streams: []int{1, 10}}
	suites := []Suite{inProcessSuite(), scalingSuite()}
	rep, err := Run(context.Background(), cfg, suites)
	if err != nil {
		t.Fatal(err)
	}
	// receive, send, reflect on both paths; reflect-inline on the fast
	// path only; two scaling rows.
	if got, want := len(rep.Results), 3*2*2*2+2*2+2; got != want {
		t.Fatalf("%d results, want %d", got, want)
	}
	for _, r := range rep.Results {
		if r.NsPerPacket <= 0 || r.PacketsPerSecond <= 0 || r.Rounds != ShortRounds {
			t.Errorf("row %+v: figures missing", r)
		}
	}
	if len(rep.Ratios) != 12 {
		t.Errorf("%d ratios, want 12", len(rep.Ratios))
	}
	var out strings.Builder
	Print(&out, rep, suites)
	for _, want := range []string{"reflect/v6/1200", "reflect-inline/v4/172", "fast vs netstack", ScaleWorkload(10), "×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMedian(t *testing.T) {
	rounds := []Result{
		{NsPerPacket: 30, PacketsPerSecond: 1, GeneratorLimited: true},
		{NsPerPacket: 10, PacketsPerSecond: 3},
		{NsPerPacket: 20, PacketsPerSecond: 2, GeneratorLimited: true},
	}
	want := Result{NsPerPacket: 20, PacketsPerSecond: 2, GeneratorLimited: true}
	if diff := cmp.Diff(want, median(rounds)); diff != "" {
		t.Errorf("median (-want +got):\n%s", diff)
	}
	if got := medianOf([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of an even count = %v, want 2.5", got)
	}
}

func TestRatios(t *testing.T) {
	s := Suite{Ratios: []RatioSpec{
		{Metric: MetricNsPerPacket, Path: PathFast, Against: []Path{PathNetstack}},
		{Metric: MetricPacketRate, Path: PathFast, Against: []Path{PathKernel}},
	}}
	results := []Result{
		{Workload: "a", Path: PathFast, NsPerPacket: 50, PacketsPerSecond: 300},
		{Workload: "a", Path: PathNetstack, NsPerPacket: 2000},
		{Workload: "a", Path: PathKernel, PacketsPerSecond: 100},
		{Workload: "b", Path: PathFast, NsPerPacket: 10}, // nothing to compare with
	}
	want := []Ratio{
		{Workload: "a", Metric: "ns_per_packet", Path: PathFast, Baseline: PathNetstack, Value: 40},
		{Workload: "a", Metric: "packets_per_second", Path: PathFast, Baseline: PathKernel, Value: 3},
	}
	if diff := cmp.Diff(want, Ratios(s, results)); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
}

func TestScaleWorkloadName(t *testing.T) {
	for _, n := range []int{1, 10000} {
		if got, ok := ScaleStreams(ScaleWorkload(n)); !ok || got != n {
			t.Errorf("ScaleStreams(ScaleWorkload(%d)) = %d, %v", n, got, ok)
		}
	}
	if _, ok := ScaleStreams("reflect/v4/172"); ok {
		t.Error("a workload without streams parsed")
	}
	seen := map[string]bool{}
	for i := range 10000 {
		p := scalePeer(i)
		if seen[p.String()] {
			t.Fatalf("stream %d shares its peer %v with another", i, p)
		}
		seen[p.String()] = true
	}
}

func TestFormats(t *testing.T) {
	for v, want := range map[float64]string{0: "-", 950: "950", 12345: "12.3k", 4.56e6: "4.56M"} {
		if got := si(v); got != want {
			t.Errorf("si(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 0.0001: "0.0001", 7.004: "7.00", 17.5: "17.50"} {
		if got := allocs(v); got != want {
			t.Errorf("allocs(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestPlot draws every chart from a made-up report and checks that a PNG
// comes out.
func TestPlot(t *testing.T) {
	rep := &Report{}
	for i, w := range []string{"receive/v4/172", "send/v6/1200"} {
		rep.Results = append(rep.Results,
			Result{Suite: "in-process", Workload: w, Path: PathFast, NsPerPacket: 70, PacketsPerSecond: 14e6 + float64(i)},
			Result{Suite: "in-process", Workload: w, Path: PathNetstack, NsPerPacket: 2000, PacketsPerSecond: 5e5})
	}
	for _, n := range DefaultStreams {
		rep.Results = append(rep.Results, Result{Suite: "scaling", Workload: ScaleWorkload(n), Path: PathFast, NsPerPacket: 100 + math.Log10(float64(n))})
	}
	for _, p := range []Path{PathFast, PathNetstack, PathKernel} {
		rep.Results = append(rep.Results, Result{Suite: "link", Workload: "link/reflect/v4/172", Path: p, PacketsPerSecond: 1e5})
	}
	file := filepath.Join(t.TempDir(), "bench.png")
	if err := Plot(rep, file); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 500 {
		t.Errorf("a %v image is too small to read", b)
	}
	if err := Plot(rep, filepath.Join(t.TempDir(), "bench.svg")); err == nil {
		t.Error("Plot wrote a .svg file as PNG")
	}
	if err := Plot(&Report{}, filepath.Join(t.TempDir(), "empty.png")); err == nil {
		t.Error("Plot drew an empty report")
	}
}

// BenchmarkInProcess runs every in-process workload's paths as Go
// benchmarks, for profiling (-cpuprofile): ns/op is per packet.
func BenchmarkInProcess(b *testing.B) {
	loops := inProcessBenches(b)
	for _, name := range slices.Sorted(maps.Keys(loops)) {
		l := loops[name]
		b.Run(name, func(b *testing.B) {
			if err := l.Run(warmup); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := l.Run(b.N); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// TestPlotCaption: a plot says the machine, the date and whether the run
// was short, since it travels without its table.
func TestPlotCaption(t *testing.T) {
	cfg := Config{Short: true}.withDefaults()
	rep := &Report{Machine: "AMD EPYC 9B45, 2 cores", Date: "2026-12-02T22:00:00Z", Settings: cfg.settings(Suites())}
	got := caption(rep)
	for _, want := range []string{"AMD EPYC 9B45", "2026-12-02T22:00:00Z", "short"} {
		if !strings.Contains(got, want) {
			t.Errorf("caption %q lacks %q", got, want)
		}
	}
}
