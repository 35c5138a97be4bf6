package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestServeLogsVersionAtStart: once its link is up, serve logs which build
// it is (module version, commit, Go, gVisor) before the "stack up" line. A
// failure to start stays a one-line error (TestServeErrorsNameTheFix).
func TestServeLogsVersionAtStart(t *testing.T) {
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "ping")
	ns := netnstest.NewNamespace(t)
	p := serveIn(t, ns, "mss5")
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	log, err := p.Wait()
	if err != nil {
		t.Fatalf("serve exited with %v after SIGINT; log:\n%s", err, log)
	}
	build := regexp.MustCompile(`(?m)^.*level=INFO msg=mediastack version=\S+ commit=\S+ go=go\S+ gvisor=v\S+$`).FindStringIndex(log)
	up := strings.Index(log, "msg=\"stack up\"")
	if build == nil || up < 0 || build[0] > up || strings.Contains(log, "gvisor=unknown") {
		t.Errorf("serve's log lacks the build line (with gVisor's version) before \"stack up\":\n%s", log)
	}
}
