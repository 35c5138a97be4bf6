package relaxed

import (
	"sync/atomic"
	"testing"
)

// TestStoreRelease: the assembly store lands in the atomic's value (its
// layout is what relaxed_amd64.s assumes) and leaves its neighbours alone.
func TestStoreRelease(t *testing.T) {
	var words [3]atomic.Uint64
	for _, v := range []uint64{1, 0xdeadbeefcafef00d, 0} {
		StoreRelease(&words[1], v)
		if got := words[1].Load(); got != v {
			t.Fatalf("after StoreRelease(%#x), Load() = %#x", v, got)
		}
		if words[0].Load() != 0 || words[2].Load() != 0 {
			t.Fatalf("StoreRelease(%#x) wrote outside its word: %#x, %#x", v, words[0].Load(), words[2].Load())
		}
	}
}
