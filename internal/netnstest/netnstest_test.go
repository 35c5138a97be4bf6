package netnstest

import (
	"strings"
	"testing"
	"time"
)

func blockUntil(stop <-chan struct{}, done chan<- struct{}) {
	<-stop
	close(done)
}

func TestLeakedGoroutinesFindsAndForgets(t *testing.T) {
	before := goroutines()
	stop, done := make(chan struct{}), make(chan struct{})
	go blockUntil(stop, done)

	leaked := leakedGoroutines(before, 2)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "netnstest.blockUntil") {
		t.Errorf("leakedGoroutines with one goroutine blocked = %q, want just blockUntil", leaked)
	}
	close(stop)
	<-done
	if leaked := leakedGoroutines(before, 100); leaked != nil {
		t.Errorf("leakedGoroutines after it returned = %q, want none", leaked)
	}
}

func TestRetry(t *testing.T) {
	calls := 0
	err := Retry(5, 0, func() error {
		calls++
		if calls < 3 {
			return ErrNotYet
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Retry = %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	if err := Retry(4, 0, func() error { calls++; return ErrNotYet }); err != ErrNotYet || calls != 4 {
		t.Errorf("Retry = %v after %d calls, want ErrNotYet after 4", err, calls)
	}
}

func TestStoppingAPipelineDoesNotHang(t *testing.T) {
	ns := NewNamespace(t)
	// sleep keeps the output pipe open after sh is gone, unless the whole
	// process group is killed.
	p := ns.Start("sh", "-c", "sleep 600 | cat")
	p.cancel()
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Wait still blocked 30s after cancelling a pipeline")
	}
}

func TestMain(m *testing.M) { Main(m) }
