package udpfast_test

import (
	"fmt"
	"testing"

	"github.com/mediastack/mediastack/udpfast"
)

// Printed Stats name every count, and the fallbacks by reason.
func TestStatsPrintReasonsByName(t *testing.T) {
	var st udpfast.Stats
	st.Fast, st.LinkWrites, st.Trains, st.FallbackErrors = 9, 4, 1, 1
	st.Fallbacks[udpfast.ReasonNoEntry] = 1
	st.Fallbacks[udpfast.ReasonTooBig] = 2
	for _, tc := range []struct {
		got, want string
	}{
		{fmt.Sprint(st), "fast 9 in 4 link writes (1 trains), through netstack 3 (no-entry 1, too-big 2), refused by netstack 1"},
		{fmt.Sprint(udpfast.Stats{}), "fast 0 in 0 link writes (0 trains), through netstack 0 (none), refused by netstack 0"},
		{fmt.Sprint(udpfast.ReasonCounts{udpfast.ReasonLinkError: 7}), "link-error 7"},
	} {
		if tc.got != tc.want {
			t.Errorf("printed %q, want %q", tc.got, tc.want)
		}
	}
}
