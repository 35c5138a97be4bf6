package mediahost

import (
	"errors"
	"testing"

	"github.com/mediastack/mediastack/link/tap"
)

func TestTAPAdvice(t *testing.T) {
	other := errors.New("tap: TAP ms0 is in use by another process")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&tap.NotTAPError{Name: "ms1", Is: "a veth interface", Ethernet: true}, "tap: ms1 is a veth interface, not a TAP device; use raw:ms1 to run on it (AF_PACKET), or another name to create a TAP"},
		{&tap.NotTAPError{Name: "lo", Is: "the loopback interface", Loopback: true}, "tap: lo is the loopback interface, not a TAP device; use raw:IFACE to run on an existing Ethernet interface (e.g. a veth end), or another name to create a TAP"},
		{&tap.NotTAPError{Name: "tun0", Is: "a TUN device (IP packets, no Ethernet)"}, "tap: tun0 is a TUN device (IP packets, no Ethernet), not a TAP device; use another name to create a TAP"},
		{other, other.Error()},
	} {
		got := tapAdvice(tc.err)
		if got.Error() != tc.want || !errors.Is(got, tc.err) {
			t.Errorf("tapAdvice(%v) = %q, want %q wrapping it", tc.err, got, tc.want)
		}
	}
}
