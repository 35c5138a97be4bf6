// Package leakcheck fails a test binary whose tests leave goroutines
// running. Plug it into a package's tests with
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
//
// After the tests pass it waits, up to a deadline generous for a loaded
// machine, for every goroutine they started to end, and fails the run with
// the stacks of those still running.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// settleTimeout is how long goroutines the tests started get to end after
// the tests passed: closing a stack or a link lets its goroutines return,
// which on a loaded machine takes a while.
const settleTimeout = 30 * time.Second

// Main runs the package's tests, then fails the run if goroutines the tests
// started are still running settleTimeout later.
func Main(m *testing.M) {
	before := goroutines()
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(before, settleTimeout); leaked != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %d goroutine(s) still running after the tests:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines polls, 20 ms apart, for up to timeout until no
// goroutine is running that was not running before and is not the
// runtime's or the testing package's; it returns those still running.
func leakedGoroutines(before map[string]string, timeout time.Duration) []string {
	var leaked []string
	for deadline := time.Now().Add(timeout); ; {
		leaked = leaked[:0]
		for id, stack := range goroutines() {
			if _, old := before[id]; !old && !benign(stack) {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(20 * time.Millisecond)
	}
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
