package main

import (
	"strings"
	"testing"

	"github.com/mediastack/mediastack/cmd/mediastack/internal/p2spbench"
	"github.com/mediastack/mediastack/internal/bench"
	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestBenchP2SPShort runs `bench --short --only p2sp`: every row is there
// (HTTP only and P2SP, the client on the host's stack and on mediastack's)
// with a rate, and no namespace is left. It asserts no timing.
func TestBenchP2SPShort(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "tc", "curl")
	before := netnstest.MustRun(t, "ip", "netns", "list")
	rep, out := runBenchJSON(t, "--only", "p2sp")
	rows := map[string]bool{}
	for _, r := range rep.Results {
		rows[r.Workload+" "+string(r.Path)] = true
		if r.MBPerSecond <= 0 || r.CPUMsPerMB <= 0 {
			t.Errorf("row %s %s has no rate or CPU: %+v", r.Workload, r.Path, r)
		}
	}
	for _, w := range []string{"p2sp-4MiB-host", "p2sp-4MiB-stack"} {
		for _, p := range []bench.Path{p2spbench.PathHTTPOnly, p2spbench.PathP2SP} {
			if !rows[w+" "+string(p)] {
				t.Errorf("no row %s %s:\n%s", w, p, out)
			}
		}
	}
	if !strings.Contains(string(out), "p2sp/http-only") && len(rep.Ratios) == 0 {
		t.Errorf("no P2SP/HTTP-only ratio in the report:\n%s", out)
	}
	if after := netnstest.MustRun(t, "ip", "netns", "list"); strings.Count(after, "msp") > strings.Count(before, "msp") {
		t.Errorf("namespaces left by the bench:\n%s", after)
	}
}
