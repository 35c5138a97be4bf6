package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/internal/bench"
)

// TestBenchShort keeps `mediastack bench` working: a short in-process run
// writes a table and a JSON report with a row per workload and path, and a
// plot. It asserts no timing.
func TestBenchShort(t *testing.T) {
	dir := t.TempDir()
	jsonFile, plotFile := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.png")
	code, stdout, stderr := runCapture("bench", "--short", "--quiet", "--only", "in-process,scaling", "--json", jsonFile, "--plot", plotFile)
	if code != 0 {
		t.Fatalf("bench --short: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"machine:", "In-process", "fast vs netstack", "Scaling"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Machine string           `json:"machine"`
		Date    string           `json:"date"`
		Results []map[string]any `json:"results"`
		Ratios  []bench.Ratio    `json:"ratios"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the JSON report does not parse: %v\n%s", err, b)
	}
	if rep.Machine == "" {
		t.Error("the report names no machine")
	}
	if rep.Date == "" {
		t.Error("the report has no date")
	}
	got := map[string]bool{}
	for _, r := range rep.Results {
		for _, field := range []string{"workload", "path", "ns_per_packet", "packets_per_second", "allocs_per_packet", "rounds"} {
			if _, ok := r[field]; !ok {
				t.Errorf("row %v lacks %q", r, field)
			}
		}
		workload, _ := r["workload"].(string)
		path, _ := r["path"].(string)
		got[workload+" "+path] = true
	}
	var want []string
	for _, kind := range []string{"receive", "send", "reflect"} {
		for _, fam := range []string{"v4", "v6"} {
			for _, size := range []string{"172", "1200"} {
				for _, path := range []string{"fast", "netstack"} {
					want = append(want, kind+"/"+fam+"/"+size+" "+path)
				}
			}
		}
	}
	for _, fam := range []string{"v4", "v6"} {
		for _, size := range []string{"172", "1200"} {
			want = append(want, "reflect-inline/"+fam+"/"+size+" fast")
		}
	}
	for _, n := range bench.ShortStreams {
		want = append(want, bench.ScaleWorkload(n)+" fast")
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no row for %s", w)
		}
	}
	if len(rep.Results) != len(want) {
		t.Errorf("%d rows, want %d", len(rep.Results), len(want))
	}
	if len(rep.Ratios) != 12 {
		t.Errorf("%d ratios, want one per in-process workload (12): %+v", len(rep.Ratios), rep.Ratios)
	}
	for _, r := range rep.Ratios {
		if r.Path != bench.PathFast || r.Baseline != bench.PathNetstack || r.Metric != "ns_per_packet" || r.Value <= 0 {
			t.Errorf("ratio %+v: want fast against netstack on ns_per_packet, positive", r)
		}
	}
	if fi, err := os.Stat(plotFile); err != nil || fi.Size() == 0 {
		t.Errorf("no plot written: %v", err)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--link", "eth"}, `--link "eth": want tap or raw`},
		{[]string{"bench", "--rounds", "-1"}, "must not be negative"},
		{[]string{"bench", "--streams", "0"}, "want stream counts from 1 to 40000"},
		{[]string{"bench", "--only", "nosuch"}, `no suite "nosuch"`},
		{[]string{"bench", "--only", "link"}, "nothing to run"},
	} {
		code, _, stderr := runCapture(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
