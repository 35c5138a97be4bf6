//go:build linux

package main

import (
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestServeTAPOnLoopbackError: `serve --link tap:lo` says lo is not a TAP and
// what to give instead (it used to suggest `ip link del lo`). Looking the
// interface up needs no privilege, only the TUN driver's device.
func TestServeTAPOnLoopbackError(t *testing.T) {
	netnstest.RequireTUN(t)
	code, _, stderr := runCapture("serve", "--link", "tap:lo", "--addr", "198.51.100.2/24")
	want := "mediastack serve: tap: lo is the loopback interface, not a TAP device; use raw:IFACE to run on an existing Ethernet interface (e.g. a veth end), or another name to create a TAP\n"
	if code != 1 || stderr != want {
		t.Errorf("serve --link tap:lo: exit %d, stderr %q; want exit 1 and the one line %q", code, stderr, want)
	}
}
