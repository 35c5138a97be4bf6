package leakcheck

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

	leaked := leakedGoroutines(before, 20*time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "leakcheck.blockUntil") {
		t.Errorf("leakedGoroutines with one goroutine blocked = %q, want just blockUntil", leaked)
	}
	close(stop)
	<-done
	if leaked := leakedGoroutines(before, settleTimeout); leaked != nil {
		t.Errorf("leakedGoroutines after it returned = %q, want none", leaked)
	}
}

func TestMain(m *testing.M) { Main(m) }
