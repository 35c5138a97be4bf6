package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the mediastack command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mediastack-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mediastack")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// serveIn starts `mediastack serve` on a new TAP inside ns, addressed like
// the harness's other tests, and waits until the kernel can ping it.
func serveIn(t *testing.T, ns *netnstest.Namespace, tapName string, extra ...string) *netnstest.Process {
	t.Helper()
	args := append([]string{binary(t), "serve", "--link", "tap:" + tapName,
		"--addr", netnstest.StackV4.String(), "--addr", netnstest.StackV6.String()}, extra...)
	p := ns.Start(args...)
	// serve creates the TAP; the kernel side gets its address once it is there.
	netnstest.WaitFor(t, netnstest.StateTimeout, "serve creating the TAP "+tapName, func() error {
		out, err := ns.IP("link", "show", "dev", tapName)
		select {
		case <-p.Done():
			t.Fatalf("serve exited: %v: %s", p.Err(), p.Output())
		default:
		}
		if err != nil {
			return fmt.Errorf("%w: %s (serve: %s)", err, out, p.Output())
		}
		return nil
	})
	ns.MustIP("addr", "add", netnstest.KernelV4.String(), "dev", tapName)
	ns.MustIP("addr", "add", netnstest.KernelV6.String(), "dev", tapName, "nodad")
	ns.MustIP("link", "set", "dev", tapName, "up")
	ns.WaitPing(netnstest.StackV4.Addr())
	return p
}

func TestServeEchoAndCleanShutdown(t *testing.T) {
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "ping", "nc", "socat")
	ns := netnstest.NewNamespace(t)
	p := serveIn(t, ns, "mss0", "--echo")
	ns.WaitPing(netnstest.StackV6.Addr())
	out, err := ns.ExecInput([]byte("hello over tcp\n"), "nc", "-N", "-w", "5", netnstest.StackV4.Addr().String(), "7")
	if err != nil || out != "hello over tcp\n" {
		t.Errorf("TCP echo: got %q, %v", out, err)
	}
	out, err = ns.ExecInput([]byte("hello over udp\n"), "socat", "-T", "2", "-", "UDP6:["+netnstest.StackV6.Addr().String()+"]:7")
	if err != nil || out != "hello over udp\n" {
		t.Errorf("UDP echo over IPv6: got %q, %v", out, err)
	}
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	log, err := p.Wait()
	if err != nil {
		t.Errorf("serve exited with %v after SIGINT; log:\n%s", err, log)
	}
	if !strings.Contains(log, "shutting down") {
		t.Errorf("serve did not log its shutdown:\n%s", log)
	}
}

func TestServeExitsWhenTAPIsDeleted(t *testing.T) {
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "ping")
	ns := netnstest.NewNamespace(t)
	p := serveIn(t, ns, "mss1")
	ns.MustIP("link", "del", "dev", "mss1")
	done := make(chan struct{})
	var log string
	var err error
	go func() { log, err = p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(netnstest.StateTimeout):
		t.Fatalf("serve still running %v after its TAP was deleted; log:\n%s", netnstest.StateTimeout, p.Output())
	}
	if err == nil {
		t.Fatalf("serve exited 0 after its TAP was deleted; log:\n%s", log)
	}
	if !strings.Contains(log, "link failed") || !strings.Contains(log, "tap:mss1") {
		t.Errorf("serve's log does not name the failed link:\n%s", log)
	}
}

func TestServeErrorsNameTheFix(t *testing.T) {
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "setpriv")
	ns := netnstest.NewNamespace(t)
	// An Ethernet interface for raw: to bind to; it goes with the namespace.
	ns.MustIP("link", "add", "dev", "msd0", "type", "veth", "peer", "name", "msd1")
	ns.MustIP("link", "set", "dev", "msd0", "up")
	bin := binary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"vanished interface", []string{bin, "serve", "--link", "raw:nosuch0", "--addr", "198.51.100.2/24"}, `interface "nosuch0" not found`},
		{"no CAP_NET_ADMIN for the TAP", []string{"setpriv", "--bounding-set", "-net_admin,-net_raw", "--inh-caps", "-net_admin,-net_raw", "--", bin, "serve", "--link", "tap:mss2", "--addr", "198.51.100.2/24"}, "CAP_NET_ADMIN"},
		{"no CAP_NET_RAW for the socket", []string{"setpriv", "--bounding-set", "-net_admin,-net_raw", "--inh-caps", "-net_admin,-net_raw", "--", bin, "serve", "--link", "raw:msd0", "--addr", "198.51.100.2/24"}, "CAP_NET_RAW"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ns.Exec(tc.args...)
			if err == nil {
				t.Fatalf("exit 0, want an error; output:\n%s", out)
			}
			out = strings.TrimSpace(out)
			if !strings.Contains(out, tc.want) {
				t.Errorf("error %q does not mention %q", out, tc.want)
			}
			if strings.Contains(out, "\n") {
				t.Errorf("want a one-line error, got:\n%s", out)
			}
		})
	}
}
