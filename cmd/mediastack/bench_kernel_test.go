package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/bench"
	"github.com/mediastack/mediastack/internal/netnstest"
)

// benchTimeout bounds one short run of the bench in the tests here.
const benchTimeout = 5 * time.Minute

// TestBenchLinkShort runs the real-link suite briefly over a TAP, the
// kernel as the peer: every path reflects something, and the namespaces
// and links the bench made are gone afterwards. It asserts no timing.
func TestBenchLinkShort(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	rep, out := runBenchJSON(t, "--link", "tap", "--only", "link")
	paths := map[bench.Path]bool{}
	for _, r := range rep.Results {
		if r.Workload != "link/reflect/v4/172" {
			t.Errorf("unexpected row %+v", r)
			continue
		}
		paths[r.Path] = true
		if !r.LossFreeRateTested || r.PacketsPerSecond <= 0 || r.LatencyP50Micros <= 0 {
			t.Errorf("%s: nothing reflected loss-free: %+v\n%s", r.Path, r, out)
		}
	}
	for _, p := range []bench.Path{bench.PathFast, bench.PathNetstack, bench.PathKernel} {
		if !paths[p] {
			t.Errorf("no row for path %s:\n%s", p, out)
		}
	}

	// The bench names what it makes ("link: made namespace msb-… with TAP
	// msbt…"); all of it must be gone.
	checkBenchCleanedUp(t, out, "link", "msb", 4)
}

// runBenchJSON runs `mediastack bench --short ARGS... --json FILE` and
// returns the report and what the bench printed.
func runBenchJSON(t *testing.T, args ...string) (bench.Report, []byte) {
	t.Helper()
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	// A hang guard, generous for a loaded machine: a short run takes
	// about half a minute (the relay suite two).
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	args = append(append([]string{"bench", "--short"}, args...), "--json", jsonFile)
	out, err := exec.CommandContext(ctx, binary(t), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s still running after %v:\n%s", strings.Join(args, " "), benchTimeout, out)
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, out
}

// checkBenchCleanedUp checks that the namespaces (PREFIX-…) and links
// (PREFIX…) named on the bench's "SUITE: made …" lines are gone; at least
// min names.
func checkBenchCleanedUp(t *testing.T, out []byte, suite, prefix string, min int) {
	t.Helper()
	lines := regexp.MustCompile(`(?m)^`+suite+`: made .*$`).FindAllString(string(out), -1)
	made := regexp.MustCompile(prefix+`t?[-0-9a-f]{8,9}[a-z]?`).FindAllString(strings.Join(lines, " "), -1)
	if len(made) < min {
		t.Fatalf("the bench did not say what it made:\n%s", out)
	}
	namespaces := netnstest.MustRun(t, "ip", "netns", "list")
	for _, name := range made {
		if strings.HasPrefix(name, prefix+"-") {
			if strings.Contains(namespaces, name) {
				t.Errorf("namespace %s is still there", name)
			}
		} else if _, err := exec.Command("ip", "link", "show", "dev", name).CombinedOutput(); err == nil {
			t.Errorf("link %s is still there", name)
		}
	}
}

// TestBenchRelayShort runs the relay suite briefly: every relay (rtpengine
// among them) has its rows, each relayed what the generator sent, and the
// namespaces and links the bench made are gone afterwards. It asserts no
// timing.
func TestBenchRelayShort(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "rtpengine")
	rep, out := runBenchJSON(t, "--only", "relay")
	relays := []bench.Path{bench.PathMediastackTap, bench.PathMediastackRaw, bench.PathGonetTap, bench.PathGoKernel, bench.PathRtpengine}
	rows := map[string]bench.Result{}
	for _, r := range rep.Results {
		rows[r.Workload+" "+string(r.Path)] = r
	}
	check := func(workload string, p bench.Path, ok func(r bench.Result) bool, want string) {
		t.Helper()
		r, found := rows[workload+" "+string(p)]
		if !found {
			t.Errorf("no row %s %s", workload, p)
			return
		}
		if !ok(r) {
			t.Errorf("%s %s: %+v, want %s", workload, p, r, want)
		}
	}
	for _, p := range append([]bench.Path{bench.PathWire}, relays...) {
		check("relay/10k/50", p, func(r bench.Result) bool {
			return r.Loss < 1 && r.LatencyP50Micros > 0 && (p == bench.PathWire || r.RelayCPUMicrosPerPacket > 0 && r.TotalCPUMicrosPerPacket > r.RelayCPUMicrosPerPacket)
		}, "datagrams relayed, timed, the relay's CPU counted")
	}
	for _, p := range relays {
		// On a busy machine no rate may keep p99 under 10 ms: the search
		// must have stepped and measured, not found a rate.
		check("relay/search/50", p, func(r bench.Result) bool {
			return r.LossFreeRateTested == (r.PacketsPerSecond > 0) && r.RelayCPUMicrosPerPacket > 0
		}, "a search that measured the relay")
		check("relay/burst/50", p, func(r bench.Result) bool { return r.DeadCalls <= 50 && r.RelayCPUMicrosPerPacket > 0 }, "a burst relayed")
		check("relay/idle/500", p, func(r bench.Result) bool { return r.RelayCPUPercent >= 0 }, "an idle row")
	}
	if len(rep.Ratios) == 0 {
		t.Errorf("no ratio against rtpengine:\n%s", out)
	}

	// The bench names what it makes ("relay: made namespaces msr-… and
	// msr-… with veth msr…g and msr…r"); all of it must be gone.
	checkBenchCleanedUp(t, out, "relay", "msr", 6)
}
