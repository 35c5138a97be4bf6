//go:build linux

package tap

import (
	"strings"
	"testing"
)

func TestMissingTUNDevice(t *testing.T) {
	old := tunDevicePath
	tunDevicePath = "/nonexistent/dev/net/tun"
	t.Cleanup(func() { tunDevicePath = old })

	_, err := New(Options{Name: "ms0"})
	want := "tap: /nonexistent/dev/net/tun is missing: load the tun module (modprobe tun)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("New with no TUN device = %v, want an error starting %q", err, want)
	}
}
