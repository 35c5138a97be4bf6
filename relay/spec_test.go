package relay_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/relay"
)

func TestParseSpec(t *testing.T) {
	peer := netip.MustParseAddrPort
	for _, tc := range []struct {
		in      string
		want    relay.Spec
		wantErr string
	}{
		{in: "20000:20002", want: relay.Spec{Ports: [2]uint16{20000, 20002}}},
		{in: "20000:20002@198.51.100.1:30000", want: relay.Spec{Ports: [2]uint16{20000, 20002}, Peers: [2]netip.AddrPort{{}, peer("198.51.100.1:30000")}}},
		{in: "20000@198.51.100.3:40000:20002", want: relay.Spec{Ports: [2]uint16{20000, 20002}, Peers: [2]netip.AddrPort{peer("198.51.100.3:40000"), {}}}},
		{in: "20000@[2001:db8::3]:40000:20002@[2001:db8::1]:30000", want: relay.Spec{Ports: [2]uint16{20000, 20002}, Peers: [2]netip.AddrPort{peer("[2001:db8::3]:40000"), peer("[2001:db8::1]:30000")}}},
		{in: "20000", wantErr: "want A:B, two ports, each optionally followed by @IP:PORT"},
		{in: "0:20002", wantErr: "want A:B"},
		{in: "20000:70000", wantErr: "want A:B"},
		{in: "20000:20002:", wantErr: "want A:B"},
		{in: "20000:20002@198.51.100.1", wantErr: `the peer after @ in "20002@198.51.100.1" is not IP:PORT`},
		{in: "20000:20002@198.51.100.1:x", wantErr: `the peer after @: "198.51.100.1:" is not ip:port`},
		{in: "20000:20002@host:30000", wantErr: `the peer after @: "host:30000" is not ip:port`},
		{in: "20000:20002@[2001:db8::1:30000", wantErr: "is not IP:PORT"},
	} {
		got, err := relay.ParseSpec(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSpec(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSpec(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("ParseSpec(%q).String() = %q, want the input back", tc.in, got.String())
		}
	}
}
