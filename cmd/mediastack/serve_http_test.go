package main

import (
	"strings"
	"testing"

	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/tcpoffload"
)

func TestTCPOffloadFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--tcp-offload", "on"}, `--tcp-offload "on": want off, soft, vnet or auto`},
		{[]string{"serve", "--link", "raw:ms0", "--addr", "198.51.100.2/24", "--tcp-offload", "vnet"}, "--tcp-offload vnet needs a tap link"},
		{[]string{"serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--http-root", "/", "--http-port", "70000"}, "--http-port 70000 out of range"},
	} {
		code, _, stderr := runCapture(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	for _, tc := range []struct {
		flag string
		kind mediahost.LinkKind
		want tcpoffload.Mode
	}{
		{"auto", mediahost.TAP, tcpoffload.Vnet},
		{"", mediahost.Raw, tcpoffload.Soft},
		{"off", mediahost.TAP, tcpoffload.Off},
		{"soft", mediahost.TAP, tcpoffload.Soft},
	} {
		cfg := serveConfig{tcpOffloadMode: tc.flag}
		mode, err := cfg.tcpOffload(tc.kind)
		got := tc.kind.TCPOffload() // what the host runs when told nothing
		if mode != nil {
			got = *mode
		}
		if err != nil || got != tc.want {
			t.Errorf("--tcp-offload %q on %s: %v, %v; want %v", tc.flag, tc.kind, got, err, tc.want)
		}
	}
}
