package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func runCapture(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestDemoIsReproducible(t *testing.T) {
	args := []string{"demo", "--duration", "3s", "--tcp-bytes", "1048576"}
	code, first, errOut := runCapture(args...)
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, errOut)
	}
	for _, want := range []string{"summary:", "tcp: 1048576 of 1048576 bytes delivered", "tcp payload verified", "udp: 150 datagrams sent"} {
		if !strings.Contains(first, want) {
			t.Errorf("demo output lacks %q:\n%s", want, first)
		}
	}
	if strings.Count(first, "\n  1s ")+strings.Count(first, "\n  2s ")+strings.Count(first, "\n  3s ") != 3 {
		t.Errorf("want one line per simulated second:\n%s", first)
	}
	_, second, _ := runCapture(args...)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("same seed, different output (-want +got):\n%s", diff)
	}
	_, other, _ := runCapture(append(args, "--seed", "7")...)
	if other == first {
		t.Errorf("seed 7 gave the same output as seed 1")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "usage: mediastack"},
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"demo", "--duration", "-1s"}, "--duration must be positive"},
		{[]string{"demo", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"serve", "--link", "eth:x", "--addr", "198.51.100.2/24"}, `unknown link kind "eth" (want tap:NAME or raw:IFACE)`},
		{[]string{"serve", "--addr", "198.51.100.2/24"}, "--link is required"},
		{[]string{"serve", "--link", "tap:ms0"}, "at least one --addr"},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2"}, `--addr "198.51.100.2" is not in CIDR form`},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--mac", "zz"}, `--mac "zz" is not a unicast Ethernet address`},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--gateway", "x"}, `--gateway "x" is not an IP address`},
	} {
		code, _, stderr := runCapture(tc.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: stderr %q lacks %q", tc.args, stderr, tc.want)
		}
		if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; len(tc.args) > 1 && lines != 1 {
			t.Errorf("%q: want a one-line error, got %d lines:\n%s", tc.args, lines, stderr)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"demo", "serve", "version"} {
		code, out, _ := runCapture(cmd, "--help")
		if code != 0 || !strings.Contains(out, "usage: mediastack "+cmd) {
			t.Errorf("%s --help: exit %d, output %q", cmd, code, out)
		}
	}
}
