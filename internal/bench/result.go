package bench

// Path names the data path a Result measured.
type Path string

// The paths a workload can run over.
const (
	PathFast     Path = "fast"     // mediastack's fast receive/send paths
	PathNetstack Path = "netstack" // netstack's own path (gonet sockets)
	PathKernel   Path = "kernel"   // Linux's own UDP/TCP sockets
	PathVnet     Path = "vnet"     // TCP offload: large packets to a TAP with a virtio-net header
	PathSoft     Path = "soft"     // TCP offload: software segmentation from header templates
	PathOff      Path = "off"      // TCP offload off: netstack's per-MSS segments
)

// Result is one row of a benchmark report: one workload over one path.
// Figures are medians over the rounds run. Fields that do not apply to a
// workload are zero and left out of the JSON.
type Result struct {
	// Workload is the same string for every path that ran it. It starts
	// with "receive", "send" or "reflect" for in-process workloads, "link"
	// for workloads over a real link, "scale" for the stream-count sweep and
	// "tcp" for TCP transfers.
	Workload string `json:"workload"`
	Path     Path   `json:"path"`
	// Suite is the table the row belongs to ("in-process", "scaling",
	// "link").
	Suite string `json:"suite,omitempty"`

	NsPerPacket      float64 `json:"ns_per_packet,omitempty"`
	PacketsPerSecond float64 `json:"packets_per_second,omitempty"`
	AllocsPerPacket  float64 `json:"allocs_per_packet"`

	// Over a real link: PacketsPerSecond is the highest rate reflected
	// with under 0.1% loss (LossFreeRateTested: some rate was; when not,
	// even the lowest rate lost more), NsPerPacket its inverse, and
	// AllocsPerPacket this process's heap allocations per datagram
	// reflected (0 for the kernel path, which runs elsewhere); the
	// round-trip latency at a fixed moderate rate; and whether the load
	// generator, not the path, limited the rate.
	LatencyP50Micros   float64 `json:"latency_p50_us,omitempty"`
	LatencyP99Micros   float64 `json:"latency_p99_us,omitempty"`
	GeneratorLimited   bool    `json:"generator_limited,omitempty"`
	LossFreeRateTested bool    `json:"loss_free_rate_tested,omitempty"`

	// Relays (the relay suite): CPU time per datagram relayed, the relay
	// process's and the relay's plus the load generator's; the relay's
	// context switches per datagram relayed and its CPU time over the
	// step's (the idle row's figure); one-way delay percentiles
	// (LatencyP50Micros, LatencyP99Micros and LatencyP999Micros) and the
	// same less the wire row's (Added...); the fraction lost; after an
	// overload burst, the calls that got nothing on a leg in the second
	// after it and the loss in the second after that.
	RelayCPUMicrosPerPacket float64 `json:"relay_cpu_us_per_packet,omitempty"`
	TotalCPUMicrosPerPacket float64 `json:"total_cpu_us_per_packet,omitempty"`
	CtxSwitchesPerPacket    float64 `json:"ctx_switches_per_packet,omitempty"`
	RelayCPUPercent         float64 `json:"relay_cpu_percent,omitempty"`
	LatencyP999Micros       float64 `json:"latency_p999_us,omitempty"`
	AddedP50Micros          float64 `json:"added_p50_us,omitempty"`
	AddedP99Micros          float64 `json:"added_p99_us,omitempty"`
	AddedP999Micros         float64 `json:"added_p999_us,omitempty"`
	Loss                    float64 `json:"loss,omitempty"`
	DeadCalls               float64 `json:"dead_calls,omitempty"`
	RecoveryLoss            float64 `json:"recovery_loss,omitempty"`

	// TCP transfers.
	MBPerSecond float64 `json:"mb_per_second,omitempty"`
	CPUMsPerMB  float64 `json:"cpu_ms_per_mb,omitempty"`

	// Rounds is how many rounds the medians are taken over.
	Rounds int `json:"rounds"`
}

// Report is what `mediastack bench --json FILE` writes.
type Report struct {
	// Machine describes where the run happened (CPU model, cores, Go version).
	Machine string `json:"machine"`
	// Date is when the run started, UTC, RFC 3339.
	Date string `json:"date,omitempty"`
	// Settings are the run's settings that change the figures (rounds,
	// link, fast reflector), as one line.
	Settings string   `json:"settings,omitempty"`
	Results  []Result `json:"results"`
	// Ratios compare paths on the same workload, within this run.
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Ratio compares two paths of one workload on one figure, both measured in
// the same run. Value is how many times better Path is than Baseline:
// Baseline's cost over Path's for costs (ns_per_packet), Path's rate over
// Baseline's for rates (packets_per_second).
type Ratio struct {
	Workload string  `json:"workload"`
	Metric   string  `json:"metric"`
	Path     Path    `json:"path"`
	Baseline Path    `json:"baseline"`
	Value    float64 `json:"value"`
}
