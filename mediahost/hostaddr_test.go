package mediahost_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/mediahost"
)

func TestKernelAddrs(t *testing.T) {
	if _, err := net.InterfaceByName("lo"); err != nil {
		t.Skipf("no loopback interface named lo here: %v", err)
	}
	addrs := []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("127.0.0.1/8")}
	got, err := mediahost.KernelAddrs(mediahost.Link{Kind: mediahost.Raw, Name: "lo"}, addrs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("KernelAddrs on lo (-want +got):\n%s", diff)
	}
	// A TAP New is still to create has no addresses yet.
	got, err = mediahost.KernelAddrs(mediahost.Link{Kind: mediahost.TAP, Name: "nosuch-ms0"}, addrs)
	if err != nil || len(got) != 0 {
		t.Errorf("KernelAddrs on a missing interface: %v, %v; want none and no error", got, err)
	}
}
