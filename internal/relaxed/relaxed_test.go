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

// BenchmarkCount compares the ways to add one to a counter after copying a
// datagram's payload, as a receive path does: an atomic add (LOCK XADD on
// amd64, a full barrier that waits for the copy's stores to drain) and
// AddSingleWriter (a load and a plain store). The difference is what one
// locked instruction costs on the machine at hand.
func BenchmarkCount(b *testing.B) {
	var src, dst [172]byte
	var c atomic.Uint64
	b.Run("atomic-add", func(b *testing.B) {
		for range b.N {
			copy(dst[:], src[:])
			c.Add(1)
		}
	})
	b.Run("single-writer", func(b *testing.B) {
		for range b.N {
			copy(dst[:], src[:])
			AddSingleWriter(&c, 1)
		}
	})
}
