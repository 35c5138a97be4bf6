//go:build linux

package tap

import (
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/internal/pollread"
)

// TestDescriptorOutOfNetpoller: the TAP's descriptor is in no epoll set of
// the process, so a frame arriving wakes the reader's thread only, not Go's
// netpoller as well (docs/design.md, "Waking the reader").
func TestDescriptorOutOfNetpoller(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	dev, _, err := openDevice(netnstest.UniqueName("mst"), DefaultMTU, new(DeviceStats))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	var fd int
	if err := dev.(*tapDevice).rc.Control(func(d uintptr) { fd = int(d) }); err != nil {
		t.Fatal(err)
	}
	if watched, err := pollread.Watched(fd); err != nil || watched {
		t.Errorf("the TAP's descriptor %d watched by an epoll set: %v (%v), want not", fd, watched, err)
	}
}
