package netnstest

import (
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

func TestStoppingAPipelineDoesNotHang(t *testing.T) {
	ns := NewNamespace(t)
	// sleep keeps the output pipe open after sh is gone, unless the whole
	// process group is killed.
	p := ns.Start("sh", "-c", "sleep 600 | cat")
	done := make(chan struct{})
	go func() { p.Kill(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Kill still blocked 30s after killing a pipeline")
	}
}

func TestWaitKillsWhatDoesNotExit(t *testing.T) {
	ns := NewNamespace(t)
	p := ns.Start("sleep", "600")
	if _, err := p.Process.Wait(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Wait on a sleeper = %v, want an error saying it was still running", err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("the sleeper was not killed when Wait gave up")
	}
}

func TestMain(m *testing.M) { leakcheck.Main(m) }
