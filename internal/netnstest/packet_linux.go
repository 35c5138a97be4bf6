package netnstest

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/linkstats"
)

// PacketSocket returns an AF_PACKET socket bound to interface name that
// receives protocol proto (network byte order; 0: none, it only sends),
// closed when the test ends.
func PacketSocket(t testing.TB, name string, proto uint16) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	index, err := linkstats.InterfaceIndex(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: index}); err != nil {
		t.Fatal(err)
	}
	return fd
}
