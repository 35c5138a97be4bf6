package csum

import (
	"math/bits"

	"golang.org/x/sys/cpu"
)

// vectorBlock is the granule of the vector code: it sums (and copies) the
// longest prefix that is a multiple of 4 bytes, in 32-byte steps, then 8
// and 4.
const vectorBlock = 4

var haveVector = cpu.X86.HasAVX2

// sumVector returns the ones' complement sum of b's little-endian 32-bit
// words in 64 bits. len(b) is a multiple of vectorBlock.
func sumVector(b []byte) uint64 {
	// sumAVX2's plain 64-bit total of 32-bit words cannot overflow for
	// inputs under 2^34 bytes; feed it 1 GiB at a time and add the
	// partial sums with end-around carry.
	var acc uint64
	for len(b) > 0 {
		n := min(len(b), maxVectorRun)
		var carry uint64
		acc, carry = bits.Add64(acc, sumAVX2(&b[0], n), 0)
		acc += carry
		b = b[n:]
	}
	return acc
}

//go:noescape
func sumAVX2(p *byte, n int) uint64

// copySumVector copies src to dst (as long, at least) and returns what
// sumVector(src) would. len(src) is a multiple of vectorBlock, and not 0.
func copySumVector(dst, src []byte) uint64 {
	if len(src) <= maxVectorRun { // every datagram: one call, no loop
		dst = dst[:len(src)] // bounds check: the assembly writes len(src) bytes
		return copySumAVX2(&dst[0], &src[0], len(src))
	}
	return copySumVectorLong(dst, src)
}

// maxVectorRun is the most the assembly sums at once: its plain 64-bit
// total of 32-bit words cannot overflow under 2^34 bytes.
const maxVectorRun = 1 << 30

func copySumVectorLong(dst, src []byte) uint64 {
	dst = dst[:len(src)]
	var acc uint64
	for len(src) > 0 {
		n := min(len(src), maxVectorRun)
		var carry uint64
		acc, carry = bits.Add64(acc, copySumAVX2(&dst[0], &src[0], n), 0)
		acc += carry
		src, dst = src[n:], dst[n:]
	}
	return acc
}

//go:noescape
func copySumAVX2(dst, src *byte, n int) uint64
