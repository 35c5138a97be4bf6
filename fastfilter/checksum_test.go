package fastfilter

import (
	"math/rand/v2"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// TestWordSumMatchesChecksum: the short-input sum equals netstack's for
// every length it is used with, including all-zero and all-one words.
func TestWordSumMatchesChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 4, 8, 20, 32} {
		for i := range 2000 {
			b := make([]byte, n)
			for j := range b {
				switch i % 3 {
				case 0:
					b[j] = byte(rng.Uint32())
				case 1:
					b[j] = 0xff
				}
			}
			initial := uint16(rng.Uint32())
			if i%5 == 0 {
				initial = 0
			}
			if got, want := wordSum(b, uint64(initial)), checksum.Checksum(b, initial); got != want {
				t.Fatalf("wordSum(%x, %#x) = %#x, checksum.Checksum = %#x", b, initial, got, want)
			}
		}
	}
}
