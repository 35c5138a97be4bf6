package main

import (
	debugbuildinfo "debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/internal/buildinfo"
)

// TestVersionBinary builds the command as BUILD.md does (-X main.version)
// and checks `mediastack version`: that version, the checkout's commit, the
// toolchain and the gVisor version go.mod pins. (A test binary's build info
// lists no dependencies, so only a real build shows gVisor's.)
func TestVersionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "mediastack")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The commit shows when the build stamped it (git at hand, no
	// -buildvcs=false): then it must be the checkout's HEAD.
	commit := "unknown"
	bi, err := debugbuildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
			if err != nil {
				t.Fatalf("the build stamped a commit, git rev-parse HEAD: %v", err)
			}
			commit = strings.TrimSpace(string(rev))
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("mediastack version: %v\n%s", err, out)
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	gvisor := regexp.MustCompile(`(?m)^\s*gvisor\.dev/gvisor (\S+)`).FindSubmatch(gomod)
	if gvisor == nil {
		t.Fatal("go.mod pins no gvisor.dev/gvisor version")
	}
	want := regexp.MustCompile(`^mediastack v9\.9\.9-test \(commit ` + regexp.QuoteMeta(commit) + `(-modified)?, ` +
		regexp.QuoteMeta(runtime.Version()) + `, gvisor ` + regexp.QuoteMeta(string(gvisor[1])) + `\)\n$`)
	if !want.Match(out) {
		t.Errorf("mediastack version = %q, want it to match %s", out, want)
	}
}

func TestVersionInProcess(t *testing.T) {
	code, out, _ := runCapture("version")
	if want := buildinfo.Read().String() + "\n"; code != 0 || out != want {
		t.Errorf("version: exit %d, %q; want 0, %q", code, out, want)
	}
}
