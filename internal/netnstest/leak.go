package netnstest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the package's tests, then fails the run if goroutines the tests
// started are still running once they had a moment to finish. Use it as
//
//	func TestMain(m *testing.M) { netnstest.Main(m) }
func Main(m *testing.M) {
	before := goroutines()
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(before, 100); leaked != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %d goroutine(s) still running after the tests:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines polls up to attempts times, 20 ms apart, until no
// goroutine is running that was not running before and is not the
// runtime's or the testing package's; it returns those still running.
func leakedGoroutines(before map[string]string, attempts int) []string {
	var leaked []string
	for attempt := 0; attempt < attempts; attempt++ {
		leaked = leaked[:0]
		for id, stack := range goroutines() {
			if _, old := before[id]; !old && !benign(stack) {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return leaked
}

// goroutines maps goroutine IDs ("goroutine 12") to their stacks, leaving
// out the caller's own.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	all := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // the caller
		}
		id, _, _ := strings.Cut(g, " [")
		all[id] = g
	}
	return all
}

func benign(stack string) bool {
	for _, s := range []string{
		"testing.(*M).",
		"testing.tRunner",
		"runtime.goexit0",
		"os/signal.signal_recv",
		"runtime.ensureSigM",
		"created by runtime.gc",
		"created by os/signal.Notify",
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
