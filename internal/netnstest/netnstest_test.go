package netnstest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/netns"
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

// TestKernelStates: the states tests wait for read as they are, whether
// reached or not.
func TestKernelStates(t *testing.T) {
	RequireTools(t, "socat", "ping")
	ns := NewNamespace(t)
	v := ns.AddVeth()
	for _, end := range []struct {
		ns  netns.Namespace
		dev string
	}{{netns.Namespace{}, v.Outside}, {ns.Namespace, v.Inside}} {
		if err := end.ns.CarrierUp(end.dev); err != nil {
			t.Errorf("CarrierUp(%s) on a fresh veth = %v, want nil", end.dev, err)
		}
	}
	if err := ns.AddressReady(KernelV6.Addr()); err != nil {
		t.Errorf("AddressReady(%s) added with nodad = %v, want nil", KernelV6.Addr(), err)
	}
	if err := ns.AddressReady(StackV6.Addr()); !errors.Is(err, ErrNotYet) {
		t.Errorf("AddressReady(%s), on no interface = %v, want ErrNotYet", StackV6.Addr(), err)
	}
	if err := ns.Ping(KernelV4.Addr()); err != nil {
		t.Errorf("Ping(%s), the namespace's own address = %v, want nil", KernelV4.Addr(), err)
	}
	if err := ns.Listening("udp", 5004); !errors.Is(err, ErrNotYet) {
		t.Errorf("Listening(udp, 5004) with no socket = %v, want ErrNotYet", err)
	}
	ns.Start("socat", "-u", "UDP4-RECV:5004", "OPEN:/dev/null")
	WaitFor(t, StateTimeout, "socat's UDP socket bound to port 5004", func() error { return ns.Listening("udp", 5004) })
	ns.MustIP("link", "set", "dev", v.Inside, "down")
	if err := ns.CarrierUp(v.Inside); !errors.Is(err, ErrNotYet) {
		t.Errorf("CarrierUp(%s) after it went down = %v, want ErrNotYet", v.Inside, err)
	}
}

func TestMain(m *testing.M) { leakcheck.Main(m) }
