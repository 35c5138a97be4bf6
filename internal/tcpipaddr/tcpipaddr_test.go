package tcpipaddr

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"}, // mapped becomes IPv4
		{"2001:db8::1", "2001:db8::1"},
	} {
		a := From(netip.MustParseAddr(tc.in))
		if got := To(a); got != netip.MustParseAddr(tc.want) {
			t.Errorf("To(From(%s)) = %v, want %s", tc.in, got, tc.want)
		}
	}
	if got := From(netip.Addr{}); got != (tcpip.Address{}) {
		t.Errorf("From(zero) = %v, want the empty address", got)
	}
	if got := To(tcpip.Address{}); got.IsValid() {
		t.Errorf("To(empty) = %v, want the zero Addr", got)
	}
	fa := FullAddress(netip.MustParseAddrPort("[2001:db8::2]:5004"))
	if fa.Port != 5004 || To(fa.Addr) != netip.MustParseAddr("2001:db8::2") || fa.NIC != 0 {
		t.Errorf("FullAddress = %+v", fa)
	}
}
