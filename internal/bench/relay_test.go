package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The relay rows: the delay less the wire's, every relay's ratios against
// rtpengine in columns of their own, and the cells that do not apply to a
// row's kind left empty.
func TestRelayTable(t *testing.T) {
	s := relaySuite()
	rows := []Result{
		{Workload: "relay/10k/50", Path: PathWire, LatencyP50Micros: 50, LatencyP99Micros: 100, LatencyP999Micros: 200},
		{Workload: "relay/10k/50", Path: PathMediastackTap, RelayCPUMicrosPerPacket: 20, TotalCPUMicrosPerPacket: 60, LatencyP50Micros: 150, LatencyP99Micros: 300, LatencyP999Micros: 400},
		{Workload: "relay/10k/50", Path: PathRtpengine, RelayCPUMicrosPerPacket: 30, TotalCPUMicrosPerPacket: 90, LatencyP50Micros: 250, LatencyP99Micros: 300, LatencyP999Micros: 500},
	}
	s.Derive(rows)
	if got := []float64{rows[0].AddedP50Micros, rows[1].AddedP50Micros, rows[1].AddedP99Micros, rows[2].AddedP999Micros}; !cmp.Equal(got, []float64{50, 100, 200, 300}) {
		t.Errorf("added delays %v, want [50 100 200 300]", got)
	}
	burst := Result{Workload: relayName("burst", 0, 50), Path: PathMediastackTap, RelayCPUMicrosPerPacket: 10, DeadCalls: 0, LatencyP50Micros: 9e4}
	idle := Result{Workload: relayName("idle", 0, 10000), Path: PathMediastackTap, RelayCPUPercent: 0.5}
	results := append(rows, burst, idle)
	for i := range results {
		results[i].Suite, results[i].Rounds = s.Name, 3
	}
	want := []Ratio{
		{Workload: "relay/10k/50", Metric: MetricRelayCPU.Name, Path: PathMediastackTap, Baseline: PathRtpengine, Value: 1.5},
		{Workload: "relay/10k/50", Metric: MetricTotalCPU.Name, Path: PathMediastackTap, Baseline: PathRtpengine, Value: 1.5},
		{Workload: "relay/10k/50", Metric: MetricAddedP50.Name, Path: PathMediastackTap, Baseline: PathRtpengine, Value: 2},
	}
	if diff := cmp.Diff(want, Ratios(s, results)); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
	var out strings.Builder
	Print(&out, &Report{Machine: "m", Results: results}, []Suite{s})
	lines := strings.Split(out.String(), "\n")
	for _, want := range []string{"× rtpengine", "relay/burst/50", "relay/idle/10000", "1.5×", "2.0×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "relay/burst/50") && strings.Contains(l, "90000") {
			t.Errorf("a burst row shows its delay: %q", l)
		}
		if strings.HasPrefix(l, "relay/idle") && strings.Contains(l, "  -  ") {
			t.Errorf("an idle row shows per-packet figures: %q", l)
		}
	}
}
