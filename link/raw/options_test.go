package raw_test

import (
	"strings"
	"testing"

	"github.com/mediastack/mediastack/link/raw"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts raw.Options
		want string
	}{
		{"no interface", raw.Options{}, "Options.Interface is empty"},
		{"long name", raw.Options{Interface: "a-name-longer-than-15"}, "longer than 15 bytes"},
		{"multicast MAC", raw.Options{Interface: "eth0", MAC: "\x01\x00\x5e\x00\x00\x01"}, "not a unicast Ethernet address"},
		{"small MTU", raw.Options{Interface: "eth0", MTU: 20}, "MTU 20 out of range"},
		{"missing interface", raw.Options{Interface: "msnosuchif0"}, `raw: interface "msnosuchif0" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := raw.New(tc.opts)
			if err == nil {
				ep.Close()
				t.Fatalf("New(%+v) succeeded, want an error containing %q", tc.opts, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("New(%+v) = %q, want one line containing %q", tc.opts, err, tc.want)
			}
		})
	}
}
