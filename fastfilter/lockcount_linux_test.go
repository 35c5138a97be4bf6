//go:build amd64

package fastfilter_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// lockCountEnv makes the test binary a child of
// TestLockedInstructionsPerDatagram: it runs the named receive path for the
// given number of datagrams and nothing else ("fast/v4/172 12000").
const lockCountEnv = "MEDIASTACK_LOCKCOUNT_CHILD"

// lockBudgets are the locked instructions a datagram may cost on the fast
// receive path, frame in at the link to payload out of the Ring: the
// receivers' turn on the ring (one compare-and-swap that also claims the
// slot) and the reader's claim (one per read: per datagram a packet at a
// time, per batch with ReadBatch). Counters, the slot's hand-over and the
// turn's release are plain stores. The slack covers the runtime's own
// (a GC cycle, a timer) spread over the datagrams.
var lockBudgets = []struct {
	path   string
	budget float64
}{
	{"fast/v4/172", 2.05},
	{"fast/v6/1200", 2.05},
	{"fastbatch/v4/172", 1 + 1.0/benchBatch + 0.05},
}

// TestLockedInstructionsPerDatagram counts, under valgrind (callgrind
// --collect-bus=yes: x86's LOCK-prefixed instructions and XCHG with memory,
// its "global bus events"), the locked instructions the fast receive path
// executes per datagram, and fails when a path takes more than its budget.
// A locked instruction costs about 20 cycles on recent Intel cores and a
// few more than a plain store on AMD's: a count, unlike a time, does not
// depend on the CPU or on what else the machine runs. Each path runs twice,
// for 2,000 and for 42,000 datagrams, and the difference is divided by
// 40,000, so setup does not count (and the runtime's own, a timer or the
// filter's address refresh, is spread thin). Under -race (which turns every
// atomic into a call) it builds the test binary again without. It needs
// valgrind (skipped without, failed with CI=true) and takes about 15 s.
func TestLockedInstructionsPerDatagram(t *testing.T) {
	if child := os.Getenv(lockCountEnv); child != "" {
		runLockCountChild(t, child)
		return
	}
	if testing.Short() {
		t.Skip("-short: skipping the valgrind runs")
	}
	valgrind, err := exec.LookPath("valgrind")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("valgrind is not installed (.ci/run installs it)")
		}
		t.Skip("valgrind is not installed")
	}
	bin := os.Args[0]
	if raceEnabled {
		bin = filepath.Join(t.TempDir(), "fastfilter.test")
		out, err := exec.Command("go", "test", "-c", "-o", bin, ".").CombinedOutput()
		if err != nil {
			t.Fatalf("building the test binary without -race: %v\n%s", err, out)
		}
	}
	const small, large = 2000, 42000
	for _, p := range lockBudgets {
		t.Run(p.path, func(t *testing.T) {
			ir0, locked0 := callgrindCounts(t, valgrind, bin, p.path, small)
			ir1, locked1 := callgrindCounts(t, valgrind, bin, p.path, large)
			perLocked := float64(locked1-locked0) / (large - small)
			perIr := float64(ir1-ir0) / (large - small)
			t.Logf("%s: %.3f locked instructions, %.0f instructions per datagram", p.path, perLocked, perIr)
			if perLocked > p.budget {
				t.Errorf("%s: %.3f locked instructions per datagram, want at most %.2f", p.path, perLocked, p.budget)
			}
		})
	}
}

// collected is valgrind's summary line: instructions, then global bus
// events (locked instructions).
var collected = regexp.MustCompile(`Collected : (\d+) (\d+)`)

// callgrindCounts runs the path for n datagrams in a child under callgrind
// and returns the instructions and locked instructions of the whole run.
func callgrindCounts(t *testing.T, valgrind, bin, path string, n int) (ir, locked uint64) {
	t.Helper()
	cmd := exec.Command(valgrind, "--tool=callgrind", "--collect-bus=yes", "--callgrind-out-file=/dev/null",
		bin, "-test.run=^TestLockedInstructionsPerDatagram$", "-test.count=1")
	// One P, no GC, no preemption signals: the same run every time.
	// cpu.rdtscp=off: valgrind 3.19 cannot run RDTSCP, which the runtime
	// reads the time stamp counter with when a lock spins.
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", lockCountEnv, path, n),
		"GOMAXPROCS=1", "GOGC=off", "GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	m := collected.FindSubmatch(stderr.Bytes())
	if err != nil || m == nil {
		t.Fatalf("valgrind %s %d: %v\n%s\n%s", path, n, err, out, stderr.Bytes())
	}
	ir, _ = strconv.ParseUint(string(m[1]), 10, 64)
	locked, _ = strconv.ParseUint(string(m[2]), 10, 64)
	return ir, locked
}

// runLockCountChild runs one receive path for the datagrams lockCountEnv
// asks for.
func runLockCountChild(t *testing.T, spec string) {
	var name, variant string
	var n int
	if _, err := fmt.Sscanf(spec, "%s %d", &name, &n); err != nil {
		t.Fatalf("%s=%q: %v", lockCountEnv, spec, err)
	}
	name, variant, _ = strings.Cut(name, "/")
	frame, ok := benchFrames[variant]
	if !ok {
		t.Fatalf("no frame %q", variant)
	}
	for _, p := range receivePaths {
		if p.name == name {
			run := p.setup(t, frame)
			run(benchBatch) // first-use allocations, as BenchmarkReceive
			run(n)
			return
		}
	}
	t.Fatalf("no receive path %q", name)
}
