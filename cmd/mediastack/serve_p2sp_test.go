package main

import (
	"net/netip"
	"strings"
	"testing"
)

// TestServeP2SPUsageErrors: serve's P2SP flags are `p2sp fetch`'s with the
// prefix p2sp-, checked the same way, and need --p2sp-origin and --control.
func TestServeP2SPUsageErrors(t *testing.T) {
	base := []string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24"}
	sidecar := []string{"--rtp-ports", "20000-20999", "--control", "8080"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--p2sp-cache", "/tmp/c"}, "--p2sp-cache needs --p2sp-origin URL"},
		{[]string{"--p2sp-down-rate", "1M"}, "--p2sp-down-rate needs --p2sp-origin URL"},
		{[]string{"--p2sp-origin", "http://198.51.100.10", "--p2sp-cache", "/tmp/c"}, "--p2sp-origin needs --control ADDR"},
		{append(sidecar, "--p2sp-origin", "http://198.51.100.10"), "--p2sp-cache DIR is required"},
		{append(sidecar, "--p2sp-origin", "http://198.51.100.10", "--p2sp-cache", "/tmp/c", "--p2sp-down-rate", "fast"), `--p2sp-down-rate "fast": want bytes per second`},
		{append(sidecar, "--p2sp-origin", "http://198.51.100.10", "--p2sp-cache", "/tmp/c", "--p2sp-listen", "198.51.100.2"), `--p2sp-listen "198.51.100.2": want IP:PORT`},
		{append(sidecar, "--p2sp-origin", "http://198.51.100.10", "--p2sp-cache", "/tmp/c", "--p2sp-stall-timeout", "0s"), "--p2sp-stall-timeout must be positive"},
	} {
		code, _, stderr := runCapture(append(base, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestServeP2SPListenDefault: without --p2sp-listen the client listens on
// the stack's first address, port 6881.
func TestServeP2SPListenDefault(t *testing.T) {
	var c serveP2SPConfig
	c.prefix, c.origin, c.cache, c.upRate, c.downRate, c.stall = serveP2SPPrefix, "http://198.51.100.10", "/tmp/c", "0", "1M", 1
	if err := c.validate(sidecarConfig{control: "127.0.0.1:8080"}, []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}); err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("198.51.100.2:6881"); c.listenAP != want || c.down != 1e6 {
		t.Errorf("listen %v down %d, want %v and 1000000", c.listenAP, c.down, want)
	}
}
