package main

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/policyarp"
)

// TestSidecarUsageErrors: bad media flags are usage errors (exit 2) with a
// one-line message naming the flag and the fix, before anything is set up.
func TestSidecarUsageErrors(t *testing.T) {
	base := []string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--reflect"}, "--reflect needs --rtp-ports LO-HI"},
		{[]string{"--relay", "20000:20002"}, "--relay needs --rtp-ports LO-HI"},
		{[]string{"--control", "127.0.0.1:8080"}, "--control needs --rtp-ports LO-HI"},
		{[]string{"--metrics", "127.0.0.1:9090"}, "--metrics needs --rtp-ports LO-HI"},
		{[]string{"--rtp-ports", "20000"}, `--rtp-ports "20000": want LO-HI`},
		{[]string{"--rtp-ports", "20999-20000"}, `--rtp-ports "20999-20000": LO 20999 is above HI 20000; write the lower port first (--rtp-ports 20000-20999)`},
		{[]string{"--rtp-ports", "0-10"}, `--rtp-ports "0-10": port 0 is not a UDP port a peer can send to; start the range at 1 or above (e.g. --rtp-ports 1-10)`},
		{[]string{"--rtp-ports", "0-65535"}, `--rtp-ports "0-65535": port 0 is not a UDP port a peer can send to; start the range at 1 or above (e.g. --rtp-ports 1-65535)`},
		{[]string{"--rtp-ports", "20000-70000"}, `--rtp-ports "20000-70000": want LO-HI`},
		{[]string{"--rtp-ports", "20000-20999", "--relay", "20000"}, `--relay "20000": want A:B`},
		{[]string{"--rtp-ports", "20000-20999", "--relay", "20000:20002@198.51.100.1"}, `--relay "20000:20002@198.51.100.1": the peer after @ in "20002@198.51.100.1" is not IP:PORT`},
		{[]string{"--rtp-ports", "20000-20999", "--relay", "20000:20002@host:30000"}, `--relay "20000:20002@host:30000": the peer after @: "host:30000" is not ip:port`},
		{[]string{"--rtp-ports", "20000-20999", "--relay", "20000:20002@198.51.100.1:30000", "--relay", "20002:20004"}, `--relay "20002:20004": port 20002 is in --relay "20000:20002@198.51.100.1:30000" already`},
		{[]string{"--rtp-ports", "20000-20999", "--relay", "20000:20000"}, `--relay "20000:20000": A and B must differ`},
		{[]string{"--rtp-ports", "20000-20999", "--relay", "20000:30000"}, `--relay "20000:30000": port 30000 is outside --rtp-ports 20000-20999`},
		{[]string{"--rtp-ports", "20000-20999", "--relay", "20000:20002", "--relay", "20002:20004"}, `--relay "20002:20004": port 20002 is in --relay "20000:20002" already`},
		{[]string{"--rtp-ports", "20000-20999", "--control", "127.0.0.1"}, `--control "127.0.0.1": want HOST:PORT or PORT`},
		{[]string{"--rtp-ports", "20000-20999", "--control", "0.0.0.0:8080"}, `--control "0.0.0.0:8080" is reachable from other hosts; set a bearer token (--control-token)`},
		{[]string{"--rtp-ports", "20000-20999", "--metrics", "[::]:9090"}, `--metrics "[::]:9090" is reachable from other hosts; set a bearer token (--control-token)`},
		{[]string{"--control-token", "0123456789abcdef"}, "--control-token needs --rtp-ports LO-HI"},
		{[]string{"--rtp-ports", "20000-20999", "--control-token", "0123456789abcdef"}, "--control-token is for --control and --metrics; neither is set"},
		{[]string{"--rtp-ports", "20000-20999", "--control", "8080", "--control-token", "short"}, "the control token is 5 characters; use at least 16"},
		{[]string{"--rtp-ports", "20000-20999", "--control", "8080", "--control-token-file", "/nonexistent/token"}, "--control-token-file: open /nonexistent/token: no such file or directory"},
		{[]string{"--rtp-ports", "20000-20999", "--control", "8080", "--control-token", "0123456789abcdef", "--control-token-file", "/x"}, "give the control token once"},
		{[]string{"--rtp-ports", "20000-20999", "--arp-aging", "1s", "--arp-refresh", "2s"}, "--arp-refresh 2s must be shorter than --arp-aging 1s"},
		{[]string{"--rtp-ports", "20000-20999", "--arp-aging", "-1s"}, "--arp-refresh 1s must be shorter than --arp-aging -1s"},
		{[]string{"--rtp-ports", "20000-20999", "--dscp", "64"}, "--dscp 64: want a DSCP from 0 to 63 (46: EF)"},
		{[]string{"--rtp-ports", "20000-20999", "--dscp", "-1"}, "--dscp -1: want a DSCP from 0 to 63 (46: EF)"},
	} {
		code, _, stderr := runCapture(append(base, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestDSCPFlag: --dscp reaches the media ports' options; its 0 (unmarked)
// is mediaport's DSCPBestEffort, its default EF.
func TestDSCPFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, mediaport.DefaultDSCP}, {[]string{"--dscp", "34"}, 34}, {[]string{"--dscp", "0"}, mediaport.DSCPBestEffort}} {
		var c sidecarConfig
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		c.registerFlags(fs)
		if err := fs.Parse(append([]string{"--rtp-ports", "20000-20999"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if err := c.validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.dscpOption(); got != tc.want {
			t.Errorf("%q: mediaport DSCP %d, want %d", tc.args, got, tc.want)
		}
	}
}

func TestARPFlags(t *testing.T) {
	var o policyarp.Options
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	registerARPFlags(fs, &o)
	if o.Aging != policyarp.DefaultAging || o.Refresh != policyarp.DefaultRefresh {
		t.Fatalf("flag defaults not applied: %+v", o)
	}
	if err := fs.Parse([]string{"--arp-aging=7s", "--arp-refresh=500ms"}); err != nil {
		t.Fatal(err)
	}
	if o.Aging != 7*time.Second || o.Refresh != 500*time.Millisecond {
		t.Fatalf("parsed %v / %v", o.Aging, o.Refresh)
	}
}
