package main

import (
	"io"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/p2sp/client"
)

func TestP2SPHelp(t *testing.T) {
	for _, c := range []struct {
		name string
		help commandHelp
		run  func(args []string, stdout, stderr io.Writer) error
	}{
		{"p2sp origin", p2spOriginHelp, runP2SPOrigin},
		{"p2sp fetch ID", p2spFetchHelp, runP2SPFetch},
		{"demo p2sp", demoP2SPHelp, runDemoP2SP},
		{"p2sp peer", p2spPeerHelp, runP2SPPeer},
	} {
		fs, out := flagSetOf(t, c.name, c.run)
		if c.name == "demo p2sp" {
			// Its help ends with what is and is not deterministic.
			if !strings.HasSuffix(out, demoP2SPDeterminism) {
				t.Errorf("demo p2sp --help does not say what is deterministic:\n%s", out)
			}
			out = strings.TrimSuffix(out, demoP2SPDeterminism)
		}
		for _, p := range helpProblems(c.name, c.help, fs, out) {
			t.Error(p)
		}
	}
	for _, args := range [][]string{{"p2sp", "--help"}, {"p2sp", "fetch", "--help"}, {"p2sp", "peer", "--help"}} {
		code, out, _ := runCapture(args...)
		if code != 0 || !strings.Contains(out, "usage: mediastack p2sp") {
			t.Errorf("%q: exit %d, output %q", args, code, out)
		}
	}
}

func TestP2SPUsageErrors(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fetch := func(extra ...string) []string {
		return append([]string{"p2sp", "fetch", id, "--origin", "http://198.51.100.10", "--cache", t.TempDir(), "--listen", "198.51.100.30:6881"}, extra...)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"p2sp"}, "want a subcommand"},
		{[]string{"p2sp", "nosuch"}, `unknown subcommand "nosuch"`},
		{[]string{"p2sp", "fetch"}, "want the file ID first"},
		{[]string{"p2sp", "fetch", "abc"}, "want 64 hex digits"},
		{[]string{"p2sp", "fetch", id, "--cache", "/tmp/x", "--listen", "198.51.100.30:6881"}, "--origin URL is required"},
		{[]string{"p2sp", "fetch", id, "--origin", "http://198.51.100.10", "--listen", "198.51.100.30:6881"}, "--cache DIR is required"},
		{[]string{"p2sp", "fetch", id, "--origin", "http://198.51.100.10", "--cache", "/tmp/x"}, "--listen IP:PORT is required"},
		{fetch("--listen", "nowhere"), `--listen "nowhere": want IP:PORT`},
		{fetch("--up-rate", "fast"), `--up-rate "fast": want bytes per second`},
		{fetch("--addr", "198.51.100.30/24"), "--addr needs --link"},
		{fetch("--link", "eth:x", "--addr", "198.51.100.30/24"), `unknown link kind "eth"`},
		{fetch("--stall-timeout", "0s"), "--stall-timeout must be positive"},
		{fetch("--play", "udp://198.51.100.1:5004"), "--play: playback"},
		{fetch("--play", "rtp://198.51.100.1:5004", "--player", "ffplay"), "pick one"},
		{fetch("--player", "rtp://198.51.100.1:5004"), "want a command"},
		{fetch("--play-verified"), "--play-verified needs --play or --player"},
		{[]string{"p2sp", "origin", "--web", "198.51.100.10:80", "--info", "198.51.100.11:80"}, "--dir DIR is required"},
		{[]string{"p2sp", "origin", "--dir", "/tmp", "--web", "198.51.100.10:80"}, "--web IP:PORT and --info IP:PORT are required"},
		{[]string{"p2sp", "origin", "--dir", "/tmp", "--web", "198.51.100.10:80", "--info", "198.51.100.10:80"}, "the file-info server listens on its own address"},
		{[]string{"p2sp", "origin", "--dir", "/tmp", "--web", "198.51.100.10:80", "--info", "198.51.100.11:80", "--http-only", "["}, `--http-only "["`},
		{[]string{"p2sp", "peer", "--cache", "/tmp/x", "--listen", "198.51.100.30:6881"}, "--origin URL is required"},
	} {
		code, _, stderr := runCapture(tc.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", tc.args, code, stderr)
		}
		if !strings.Contains(stderr, tc.want) || !strings.HasPrefix(stderr, "mediastack p2sp: ") {
			t.Errorf("%q: stderr %q lacks %q after \"mediastack p2sp: \"", tc.args, stderr, tc.want)
		}
		if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; len(tc.args) > 1 && lines != 1 {
			t.Errorf("%q: want a one-line error, got %d lines:\n%s", tc.args, lines, stderr)
		}
	}
}

func TestFormatSources(t *testing.T) {
	got := formatSources(map[string]int64{"198.51.100.22": 2e6, client.WebSource: 1.5e6, "198.51.100.21": 3e6})
	if want := "web 1.5 MB, 198.51.100.21 3.0 MB, 198.51.100.22 2.0 MB"; got != want {
		t.Errorf("formatSources = %q, want %q", got, want)
	}
}

// TestDemoP2SP runs the P2SP demo small: every step shows, the P2SP fetch
// uses the web seed and every peer, the second fetch is a cache hit. Times
// and splits are not asserted (the demo's help says why).
func TestDemoP2SP(t *testing.T) {
	code, out, errOut := runCapture("demo", "p2sp", "--size", "1048576", "--rate", "32", "--timeout", "3m")
	if code != 0 {
		t.Fatalf("demo p2sp: exit %d: %s\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"client fetched http-only.wav: http ",
		"client fetched p2sp.wav again: cache, no request at the origin",
		"summary: HTTP only ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo p2sp output lacks %q:\n%s", want, out)
		}
	}
	var p2spLine string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "client fetched p2sp.wav: ") {
			p2spLine = line
		}
	}
	for _, src := range []string{"p2sp in", "web ", "198.51.100.12 ", "198.51.100.13 ", "198.51.100.14 "} {
		if !strings.Contains(p2spLine, src) {
			t.Errorf("the client's P2SP line %q lacks %q:\n%s", p2spLine, src, out)
		}
	}
}
