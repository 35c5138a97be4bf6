package bench

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"time"
)

// Config is what one run of the benchmark is asked to do.
type Config struct {
	// Rounds is how many rounds each path of a workload runs; figures are
	// medians over them (default DefaultRounds, ShortRounds with Short).
	Rounds int
	// RoundTime is how long one round of a packet loop runs (default
	// DefaultRoundTime, ShortRoundTime with Short).
	RoundTime time.Duration
	// Short makes a quick run that keeps the command working (CI): few,
	// short rounds and smaller stream counts. Its figures are not for
	// comparison.
	Short bool
	// Streams are the stream counts of the scaling suite (default
	// DefaultStreams, ShortStreams with Short).
	Streams []int
	// Link, when "tap" or "raw", adds the suite over a real link with the
	// Linux kernel as the peer (root only).
	Link string
	// LinkRounds is how many rate searches each path of the real-link
	// suite runs (default DefaultLinkRounds, 1 with Short).
	LinkRounds int
	// FastReflector is how the real-link suite's fast path reflects:
	// ReflectorRing (the default) or ReflectorInline.
	FastReflector string
	// RelayPaths, when set, limits the relay suite to these relays (the
	// wire row always runs); by default every one (rtpengine when
	// installed).
	RelayPaths []Path
	// Rows, when set, runs only the workloads (rows) whose name it
	// matches, e.g. `^relay/(10k/500|idle/10000)$`.
	Rows *regexp.Regexp
	// Helper is the command line that runs this program's hidden helper
	// subcommands (the load generator and the kernel reflector) in a
	// network namespace, e.g. [/proc/self/exe]; the helper's name is
	// appended (HelperGenerator, HelperKernelReflector, HelperRelay); the
	// relay suite also runs `HELPER... serve`. Needed with Link and by the
	// relay suite.
	Helper []string
	// Log, when set, receives a line per workload as the run progresses.
	Log io.Writer
}

// Defaults of Config.
const (
	DefaultRounds    = 11
	DefaultRoundTime = 30 * time.Millisecond
	ShortRounds      = 3
	ShortRoundTime   = time.Millisecond
	// A real-link round is a whole rate search: a few seconds.
	DefaultLinkRounds = 3
)

// The fast reflectors of the real-link suite.
const (
	// ReflectorRing has the filter fill a Ring that the application's
	// goroutine reads a batch at a time and answers with Sender.SendBatch:
	// built like the gonet reflector it is compared with (the link's
	// goroutine queues, the application's goroutine reads and writes),
	// and like a media application.
	ReflectorRing = "ring"
	// ReflectorInline answers each datagram from the filter's ReceiveFunc,
	// on the link's receive goroutine, with Sender.Send: the in-process
	// suite's reflector.
	ReflectorInline = "inline"
)

// Stream counts of the scaling suite.
var (
	DefaultStreams = []int{1, 100, 1000, 10000}
	ShortStreams   = []int{1, 100}
)

func (c Config) withDefaults() Config {
	if c.Rounds <= 0 {
		c.Rounds = DefaultRounds
		if c.Short {
			c.Rounds = ShortRounds
		}
	}
	if c.RoundTime <= 0 {
		c.RoundTime = DefaultRoundTime
		if c.Short {
			c.RoundTime = ShortRoundTime
		}
	}
	if c.FastReflector == "" {
		c.FastReflector = ReflectorRing
	}
	if c.LinkRounds <= 0 {
		c.LinkRounds = DefaultLinkRounds
		if c.Short {
			c.LinkRounds = 1
		}
	}
	if len(c.Streams) == 0 {
		c.Streams = DefaultStreams
		if c.Short {
			c.Streams = ShortStreams
		}
	}
	return c
}

func (c Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// Workload is one measurement that runs the same way over one or more
// paths: the same Name (which becomes Result.Workload) on every path.
type Workload struct {
	Name  string
	Paths []Path
	// Open prepares the workload on one path. The runner opens every path
	// of the workload, runs their rounds interleaved (so drift on a shared
	// machine hits every path alike) and closes them.
	Open func(ctx context.Context, path Path) (Bench, error)
}

// Bench is a workload prepared on one path.
type Bench interface {
	// Round measures once and returns that round's figures; the runner
	// fills in Workload, Path and Rounds and takes the medians.
	Round(ctx context.Context) (Result, error)
	// Close releases what Open made.
	Close() error
}

// Suite is a group of workloads printed as one table: the in-process
// comparison, the scaling sweep, the real link. A new kind of benchmark
// (TCP transfers, say) is a new Suite in Suites.
type Suite struct {
	// Name identifies the suite ("in-process"); Title heads its table.
	Name, Title string
	// Enabled reports whether the suite runs with cfg (nil: always).
	Enabled func(cfg Config) bool
	// Workloads lists the suite's workloads for cfg; done, when not nil,
	// is called after the last one ran, to release what they share (a
	// namespace, a generator process).
	Workloads func(cfg Config) (ws []Workload, done func() error, err error)
	// Rounds, when set, overrides Config.Rounds (a real-link search is
	// too long to repeat eleven times).
	Rounds func(cfg Config) int
	// Columns are the figures the table shows for each row.
	Columns []Column
	// Ratios are the comparisons the table and the report give, each
	// taken within the run.
	Ratios []RatioSpec
	// Derive, when set, fills in figures of a workload's rows that depend
	// on other rows of it (the relay suite's delay less the wire's),
	// before the ratios are taken.
	Derive func(rows []Result)
	// Note, when set, is printed under the table (e.g. what limited a
	// generator).
	Note func(results []Result) string
}

// Column is one figure of a suite's table.
type Column struct {
	Header string
	Value  func(r Result) string
}

// RatioSpec compares Path (or each of Paths) against each of Against on
// Metric, for every workload that ran on both; a value above 1 means Path
// is better (cheaper or faster).
type RatioSpec struct {
	Metric  Metric
	Path    Path
	Against []Path
	// Paths, when set, are compared instead of Path, in one column per
	// baseline (the relay suite: every relay × rtpengine).
	Paths []Path
}

// compares reports whether the spec compares p against its baselines.
func (s RatioSpec) compares(p Path) bool {
	if len(s.Paths) > 0 {
		return slices.Contains(s.Paths, p)
	}
	return p == s.Path
}

// Metric is a figure of a Result that a ratio compares.
type Metric struct {
	// Name is the figure's JSON name ("ns_per_packet"); Label names it in
	// a table heading ("ns/pkt").
	Name, Label string
	// Get reads it from a result.
	Get func(r Result) float64
	// LowerIsBetter inverts the ratio: costs, latencies.
	LowerIsBetter bool
}

// Metrics the suites compare.
var (
	MetricNsPerPacket = Metric{Name: "ns_per_packet", Label: "ns/pkt", Get: func(r Result) float64 { return r.NsPerPacket }, LowerIsBetter: true}
	MetricPacketRate  = Metric{Name: "packets_per_second", Label: "pkts/s", Get: func(r Result) float64 { return r.PacketsPerSecond }}
	MetricMBPerSecond = Metric{Name: "mb_per_second", Label: "MB/s", Get: func(r Result) float64 { return r.MBPerSecond }}
	MetricCPUMsPerMB  = Metric{Name: "cpu_ms_per_mb", Label: "CPU/MB", Get: func(r Result) float64 { return r.CPUMsPerMB }, LowerIsBetter: true}
)

// Suites returns the benchmark's suites in the order they run and print:
// the built-in ones, then those added with Register.
func Suites() []Suite {
	return append([]Suite{inProcessSuite(), scalingSuite(), linkSuite(), tcpSuite(), relaySuite()}, registered...)
}

// registered are the suites other modules added (Register).
var registered []Suite

// Register adds a suite that lives outside this module, for a program that
// can import what it measures (cmd/mediastack registers p2sp's, which the
// root module may not depend on). Call it from an init function; a name
// already taken panics.
func Register(s Suite) {
	for _, have := range Suites() {
		if have.Name == s.Name {
			panic("bench: suite " + s.Name + " registered twice")
		}
	}
	registered = append(registered, s)
}
