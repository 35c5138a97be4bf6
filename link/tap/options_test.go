package tap_test

import (
	"strings"
	"testing"

	"github.com/mediastack/mediastack/link/tap"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts tap.Options
		want string
	}{
		{"long name", tap.Options{Name: "a-name-longer-than-15"}, "longer than 15 bytes"},
		{"slash in name", tap.Options{Name: "a/b"}, "not a valid interface name"},
		{"dot name", tap.Options{Name: ".."}, "not a valid interface name"},
		{"small MTU", tap.Options{Name: "ms0", MTU: 20}, "MTU 20 out of range"},
		{"huge MTU", tap.Options{Name: "ms0", MTU: 70000}, "MTU 70000 out of range"},
		{"short MAC", tap.Options{Name: "ms0", MAC: "\x02\x00\x00"}, "not a unicast Ethernet address"},
		{"multicast MAC", tap.Options{Name: "ms0", MAC: "\x01\x00\x5e\x00\x00\x01"}, "not a unicast Ethernet address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := tap.New(tc.opts)
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
