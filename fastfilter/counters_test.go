package fastfilter_test

import (
	"fmt"
	"testing"

	"github.com/mediastack/mediastack/fastfilter"
)

// Printed Counters name every count, and the pass and drop reasons.
func TestCountersPrintReasonsByName(t *testing.T) {
	c := fastfilter.Counters{FastDelivered: 10, NetstackDelivered: 2, ToNetstack: 5,
		Passed:  fastfilter.PassedCounters{NotIP: 3, Fragment: 2},
		Dropped: fastfilter.DroppedCounters{BufferFull: 1}}
	for _, tc := range []struct {
		got, want string
	}{
		{fmt.Sprint(c), "fast 10, via netstack 2, passed to netstack 5 (not-ip 3, fragment 2), dropped 1 (buffer-full 1)"},
		{fmt.Sprint(fastfilter.Counters{}), "fast 0, via netstack 0, passed to netstack 0 (none), dropped 0 (none)"},
	} {
		if tc.got != tc.want {
			t.Errorf("printed %q, want %q", tc.got, tc.want)
		}
	}
}
