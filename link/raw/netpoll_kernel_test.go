//go:build linux

package raw

import (
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/internal/pollread"
)

// TestDescriptorOutOfNetpoller: the AF_PACKET socket is in no epoll set of
// the process, so a frame arriving wakes the reader's thread only, not Go's
// netpoller as well (docs/design.md, "Waking the reader").
func TestDescriptorOutOfNetpoller(t *testing.T) {
	netnstest.Require(t)
	_, rx := wire(t)
	var fd int
	if err := rx.rc.Control(func(d uintptr) { fd = int(d) }); err != nil {
		t.Fatal(err)
	}
	if watched, err := pollread.Watched(fd); err != nil || watched {
		t.Errorf("the socket's descriptor %d watched by an epoll set: %v (%v), want not", fd, watched, err)
	}
}
