package main

import (
	"bytes"
	"regexp"
	"strconv"
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
	for _, want := range []string{"summary:", "tcp: 1048576 of 1048576 bytes delivered", "tcp payload verified", "rtp: 4 streams, 600 packets sent"} {
		if !strings.Contains(first, want) {
			t.Errorf("demo output lacks %q:\n%s", want, first)
		}
	}
	// The RTP went over the fast paths: most of it fast both ways, nothing
	// through netstack on the receive side, and every packet is accounted
	// for (received + lost = sent).
	if m := regexp.MustCompile(`rtp: 4 streams, 600 packets sent, (\d+) received, (\d+) lost, 0 out of order`).FindStringSubmatch(first); m == nil || atoi(m[1])+atoi(m[2]) != 600 || atoi(m[1]) < 590 {
		t.Errorf("demo's RTP summary is not 600 packets, nearly all received, in order:\n%s", first)
	}
	if m := regexp.MustCompile(`fast path: (\d+) datagrams sent fast, (\d+) through netstack .*; (\d+) received fast, 0 through netstack`).FindStringSubmatch(first); m == nil || atoi(m[1]) < 600 || atoi(m[2]) > 20 || atoi(m[3]) < 590 {
		t.Errorf("demo's fast path summary does not show the RTP going fast:\n%s", first)
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

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
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
		{[]string{"demo", "--rtp-streams", "0"}, "--rtp-streams must be in [1, 25]"},
		{[]string{"serve", "--link", "eth:x", "--addr", "198.51.100.2/24"}, `unknown link kind "eth" (want tap:NAME or raw:IFACE)`},
		{[]string{"serve", "--addr", "198.51.100.2/24"}, "--link is required"},
		{[]string{"serve", "--link", "tap:ms0"}, "at least one --addr"},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2"}, `--addr "198.51.100.2" is not in CIDR form`},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--mac", "zz"}, `--mac "zz" is not a unicast Ethernet address`},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--gateway", "x"}, `--gateway "x" is not an IP address`},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--vlan", "4095"}, "--vlan 4095 is not a VLAN ID (1-4094)"},
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
