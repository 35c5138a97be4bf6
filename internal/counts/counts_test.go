package counts_test

import (
	"testing"

	"github.com/mediastack/mediastack/internal/counts"
)

func TestNamed(t *testing.T) {
	names := []string{"a", "b", "c"}
	for _, tc := range []struct {
		counts []uint64
		want   string
	}{
		{[]uint64{0, 0, 0}, "none"},
		{[]uint64{1, 0, 0}, "a 1"},
		{[]uint64{0, 2, 30}, "b 2, c 30"},
	} {
		if got := counts.Named(names, tc.counts); got != tc.want {
			t.Errorf("Named(%v) = %q, want %q", tc.counts, got, tc.want)
		}
	}
}
