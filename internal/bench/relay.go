package bench

import (
	"fmt"
	"strings"
)

// The relay suite (Config.Relay, root): media relays, each in a process of
// its own, relay K calls (two legs each, RTP both ways) for the load
// generator in relay mode (relaygen_linux.go), and the table gives what
// each costs per packet relayed, the delay it adds, the highest rate it
// relays loss-free, and how it comes out of an overload:
//
//   - mediastack-tap, mediastack-raw: `mediastack serve --rtp-ports
//     --listen-ng` on a TAP or on AF_PACKET on a veth end, the calls made
//     over its ng port, as operators run it;
//   - gonet-tap: a relay on netstack's gonet sockets, in a process of its
//     own on a TAP (the same stack without the fast paths);
//   - go-kernel: a plain Go relay on Linux's UDP sockets (a goroutine per
//     socket, ReadFromUDPAddrPort, WriteToUDPAddrPort);
//   - rtpengine: Debian's rtpengine, userspace forwarding (--table=-1),
//     the calls made over its ng port (offer, answer), when installed.

// Paths of the relay suite.
const (
	PathMediastackTap Path = "mediastack-tap"
	PathMediastackRaw Path = "mediastack-raw"
	PathGonetTap      Path = "gonet-tap"
	PathGoKernel      Path = "go-kernel"
	PathRtpengine     Path = "rtpengine"
	// PathWire is no relay: the kernel of the relay's namespace forwards
	// the generator's datagrams back to it as a router would. Its delay
	// is what the others' "added" delay is counted from.
	PathWire Path = "wire"
)

// RelayPaths are the relays of the relay suite.
var RelayPaths = []Path{PathMediastackTap, PathMediastackRaw, PathGonetTap, PathGoKernel, PathRtpengine}

// Relay suite parameters.
const (
	// relayMaxP99Micros is the loss-free search's other bound: a rate
	// passes with under lossFree loss and a one-way p99 under it.
	relayMaxP99Micros = 10000
	// relayBurstRate and relayBurstMs are the overload burst; after it
	// the calls run at the workload's rate for relayAfterMs twice: a call
	// with a leg that got nothing in the first is dead; the loss in the
	// second says whether the relay is back.
	relayBurstRate = 200000
	relayBurstMs   = 3000
	relayAfterMs   = 1000
	// relayIdleCalls are set up and left silent for relayIdleMs.
	relayIdleCalls = 10000
	relayIdleMs    = 5000
	// relayMaxCalls is the calls the relays driven over ng are told to
	// hold at most (mediastack's --max-calls, rtpengine's --max-sessions):
	// the idle row's, which every row's calls are deleted before.
	relayMaxCalls = relayIdleCalls
	// relayFirstPeerPort is the generator's first leg port; call i's
	// legs are relayFirstPeerPort+4i and +4i+2 (RTP ports, even; RTCP
	// would take the odd ones after them).
	relayFirstPeerPort = 10000
	// relayFirstPort is the first port of the relays' range.
	relayFirstPort = 20000
	relayLastPort  = 61999
)

// relayPlan is what the relay suite runs.
type relayPlan struct {
	calls  []int     // calls of the fixed-rate rows
	rates  []float64 // offered rates, packets per second (all legs)
	stepMs int       // a fixed-rate step
	search searchParams
	// searchCalls: the loss-free search runs at these call counts.
	searchCalls []int
	burstCalls  []int
	idleCalls   int
	idleMs      int
	afterMs     int
	burstMs     int
}

func (cfg Config) relayPlan() relayPlan {
	if cfg.Short {
		return relayPlan{calls: []int{50}, rates: []float64{10000}, stepMs: 300,
			search:      searchParams{stepMs: 200, drainMs: 50, startRate: 5000, maxRate: 20000, factor: 4, refine: 0.5, refineFactor: 4},
			searchCalls: []int{50}, burstCalls: []int{50}, idleCalls: 500, idleMs: 300, afterMs: 300, burstMs: 300}
	}
	return relayPlan{calls: []int{1, 50, 500, 5000}, rates: []float64{10000, 40000}, stepMs: 5000,
		search: searchParams{stepMs: 1000, drainMs: 100, startRate: 10000, maxRate: 1e6, factor: 1.6,
			refine: 0.6, refineFactor: 1.25, bisections: 3},
		searchCalls: []int{50, 500}, burstCalls: []int{50, 500}, idleCalls: relayIdleCalls, idleMs: relayIdleMs,
		afterMs: relayAfterMs, burstMs: relayBurstMs}
}

// MetricRelayCPU and the others are the relay suite's ratios (× rtpengine).
var (
	MetricRelayCPU = Metric{Name: "relay_cpu_us_per_packet", Label: "relay CPU", Get: func(r Result) float64 { return r.RelayCPUMicrosPerPacket }, LowerIsBetter: true}
	MetricTotalCPU = Metric{Name: "total_cpu_us_per_packet", Label: "+gen CPU", Get: func(r Result) float64 { return r.TotalCPUMicrosPerPacket }, LowerIsBetter: true}
	MetricAddedP50 = Metric{Name: "added_p50_us", Label: "p50 added", Get: func(r Result) float64 { return r.AddedP50Micros }, LowerIsBetter: true}
)

func relaySuite() Suite {
	relays := []Path{PathMediastackTap, PathMediastackRaw, PathGonetTap, PathGoKernel}
	return Suite{
		Name:  "relay",
		Title: "Media relays, each a process of its own, relaying K calls (RTP both ways) for a load generator in a network namespace",
		Workloads: func(cfg Config) ([]Workload, func() error, error) {
			return relaySuiteWorkloads(cfg)
		},
		Rounds: func(cfg Config) int { return cfg.LinkRounds },
		Derive: deriveAdded,
		Columns: []Column{
			{"relay µs/pkt", relayCell(notIdle, func(r Result) string { return micros(r.RelayCPUMicrosPerPacket) })},
			{"+gen µs/pkt", relayCell(notIdle, func(r Result) string { return micros(r.TotalCPUMicrosPerPacket) })},
			{"cs/pkt", relayCell(notIdle, func(r Result) string { return fixed(r.CtxSwitchesPerPacket, 2) })},
			{"relay CPU %", func(r Result) string { return fixed(r.RelayCPUPercent, 1) }},
			{"p50 µs", relayCell(timed, func(r Result) string { return fixed(r.AddedP50Micros, 0) })},
			{"p99 µs", relayCell(timed, func(r Result) string { return fixed(r.AddedP99Micros, 0) })},
			{"p999 µs", relayCell(timed, func(r Result) string { return fixed(r.AddedP999Micros, 0) })},
			{"loss %", relayCell(notIdle, func(r Result) string { return fixed(100*r.Loss, 3) })},
			{"loss-free pkts/s", relayCell(kindIs("search"), lossFreeRate)},
			{"dead calls", relayCell(kindIs("burst"), func(r Result) string { return fmt.Sprintf("%.0f", r.DeadCalls) })},
			{"loss 1-2 s after %", relayCell(kindIs("burst"), func(r Result) string { return fixed(100*r.RecoveryLoss, 2) })},
		},
		Ratios: []RatioSpec{
			{Metric: MetricRelayCPU, Against: []Path{PathRtpengine}, Paths: relays},
			{Metric: MetricTotalCPU, Against: []Path{PathRtpengine}, Paths: relays},
			{Metric: MetricAddedP50, Against: []Path{PathRtpengine}, Paths: relays},
			{Metric: MetricPacketRate, Against: []Path{PathRtpengine}, Paths: relays},
		},
		Note: func(rows []Result) string {
			p, short := Config{}.relayPlan(), Config{Short: true}.relayPlan()
			return fmt.Sprintf("relay/RATE/K: K calls at RATE packets/s in all (both legs of every call, in turn) for %d ms (%d with --short); 172-byte RTP datagrams.\n"+
				"relay µs/pkt: the relay process's CPU time (all its threads, /proc/PID/task/*/schedstat) per datagram relayed; +gen adds the generator's\n"+
				"(which the kernel charges with delivering the relay's datagrams to it, and for rtpengine and go-kernel with their receive path).\n"+
				"cs/pkt: the relay's voluntary and involuntary context switches per datagram relayed. relay CPU %%: its CPU time over the step's.\n"+
				"p50/p99/p999: one-way delay, generator to relay to generator, less the wire row's (the relay's namespace forwarding as a router, no relay;\n"+
				"the wire row shows its own). Once rtpengine logs \"Too many packets in UDP receive queue (more than 50), aborting loop\" for a port,\n"+
				"that port relayed nothing more in our runs: at thousands of datagrams/s per call (relay/RATE/1) or after a burst, shown as loss.\n"+
				"relay/search/K: the highest rate relayed with under %.1f%% loss and p99 under %d ms, %d ms steps, stepped up ×%.1f then bisected.\n"+
				"relay/burst/K: %s pkt/s for %d ms (loss %%: during it), then the calls at 10k pkt/s: dead calls got nothing on a leg in the first %d ms after; then the loss in the next %d ms.\n"+
				"relay/idle/%d: that many calls set up and silent for %d ms: relay CPU %% is what they cost.",
				p.stepMs, short.stepMs, lossFree*100, relayMaxP99Micros/1000, p.search.stepMs, p.search.factor,
				si(relayBurstRate), p.burstMs, p.afterMs, p.afterMs, p.idleCalls, p.idleMs)
		},
	}
}

// relayKind is the kind of a relay row: "search", "burst", "idle", or ""
// for a fixed rate.
func relayKind(r Result) string {
	kind, _, _ := strings.Cut(strings.TrimPrefix(r.Workload, "relay/"), "/")
	switch kind {
	case "search", "burst", "idle":
		return kind
	}
	return ""
}

func kindIs(kind string) func(Result) bool {
	return func(r Result) bool { return relayKind(r) == kind }
}

// notIdle: a row with traffic. timed: a row whose delay means something
// (not an overload burst's).
var (
	notIdle = func(r Result) bool { return relayKind(r) != "idle" }
	timed   = func(r Result) bool { return relayKind(r) == "" || relayKind(r) == "search" }
)

// relayCell shows value on the rows where it applies, nothing elsewhere.
func relayCell(applies func(Result) bool, value func(Result) string) func(Result) string {
	return func(r Result) string {
		if !applies(r) {
			return ""
		}
		return value(r)
	}
}

// micros formats a µs figure: two decimals under 10, one above.
func micros(v float64) string {
	if v == 0 {
		return "-"
	}
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fixed(v float64, decimals int) string {
	return fmt.Sprintf("%.*f", decimals, v)
}

// relayName names a relay workload: relay/10k/50 (a fixed rate),
// relay/search/500, relay/burst/50, relay/idle/10000.
func relayName(kind string, rate float64, calls int) string {
	if kind == "" {
		return fmt.Sprintf("relay/%gk/%d", rate/1000, calls)
	}
	return fmt.Sprintf("relay/%s/%d", kind, calls)
}

// deriveAdded counts each row's delay from the wire row's, when there is
// one: what the relay adds.
func deriveAdded(rows []Result) {
	var wire *Result
	for i := range rows {
		if rows[i].Path == PathWire {
			wire = &rows[i]
		}
	}
	for i := range rows {
		r := &rows[i]
		r.AddedP50Micros, r.AddedP99Micros, r.AddedP999Micros = r.LatencyP50Micros, r.LatencyP99Micros, r.LatencyP999Micros
		if wire != nil && r.Path != PathWire {
			r.AddedP50Micros -= wire.LatencyP50Micros
			r.AddedP99Micros -= wire.LatencyP99Micros
			r.AddedP999Micros -= wire.LatencyP999Micros
		}
	}
}
