#include "textflag.h"

// func sumAVX2(p *byte, n int) uint64
//
// Sums the little-endian 32-bit words at p[0:n], n a multiple of 4. Each
// 32-byte load is split into its eight dwords, zero-extended into 64-bit
// lanes by interleaving with a zero register, so the lanes never carry out
// and four accumulators keep the adds independent of each other.
TEXT ·sumAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y15, Y15, Y15

	CMPQ CX, $128
	JB   tail32

loop128:
	VMOVDQU    0(SI), Y4
	VMOVDQU    32(SI), Y5
	VMOVDQU    64(SI), Y6
	VMOVDQU    96(SI), Y7
	VPUNPCKLDQ Y15, Y4, Y8
	VPUNPCKHDQ Y15, Y4, Y9
	VPUNPCKLDQ Y15, Y5, Y10
	VPUNPCKHDQ Y15, Y5, Y11
	VPADDQ     Y8, Y0, Y0
	VPADDQ     Y9, Y1, Y1
	VPADDQ     Y10, Y2, Y2
	VPADDQ     Y11, Y3, Y3
	VPUNPCKLDQ Y15, Y6, Y8
	VPUNPCKHDQ Y15, Y6, Y9
	VPUNPCKLDQ Y15, Y7, Y10
	VPUNPCKHDQ Y15, Y7, Y11
	VPADDQ     Y8, Y0, Y0
	VPADDQ     Y9, Y1, Y1
	VPADDQ     Y10, Y2, Y2
	VPADDQ     Y11, Y3, Y3
	ADDQ       $128, SI
	SUBQ       $128, CX
	CMPQ       CX, $128
	JAE        loop128

tail32:
	XORQ R8, R8
	CMPQ CX, $32
	JB   tail8

loop32:
	VMOVDQU    0(SI), Y4
	VPUNPCKLDQ Y15, Y4, Y8
	VPUNPCKHDQ Y15, Y4, Y9
	VPADDQ     Y8, Y0, Y0
	VPADDQ     Y9, Y1, Y1
	ADDQ       $32, SI
	SUBQ       $32, CX
	CMPQ       CX, $32
	JAE        loop32

	// Under 32 bytes left: 8, then 4 at a time, into R8.
tail8:
	CMPQ CX, $8
	JB   tail4
	MOVQ (SI), AX
	MOVL AX, BX
	SHRQ $32, AX
	ADDQ BX, R8
	ADDQ AX, R8
	ADDQ $8, SI
	SUBQ $8, CX
	JMP  tail8

tail4:
	CMPQ CX, $4
	JB   reduce
	MOVL (SI), AX
	ADDQ AX, R8

reduce:
	VPADDQ       Y1, Y0, Y0
	VPADDQ       Y3, Y2, Y2
	VPADDQ       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ       X1, X0, X0
	VPEXTRQ      $1, X0, BX
	VMOVQ        X0, AX
	ADDQ         BX, AX
	ADDQ         R8, AX
	VZEROUPPER
	MOVQ         AX, ret+16(FP)
	RET

// func copySumAVX2(dst, src *byte, n int) uint64
//
// sumAVX2 that also copies src[0:n] to dst[0:n] in the same pass, so the
// payload is read once: each 32-byte load is stored and summed.
TEXT ·copySumAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y15, Y15, Y15

	CMPQ CX, $64
	JB   copytail32

copyloop64:
	VMOVDQU    0(SI), Y4
	VMOVDQU    32(SI), Y5
	VMOVDQU    Y4, 0(DI)
	VMOVDQU    Y5, 32(DI)
	VPUNPCKLDQ Y15, Y4, Y8
	VPUNPCKHDQ Y15, Y4, Y9
	VPUNPCKLDQ Y15, Y5, Y10
	VPUNPCKHDQ Y15, Y5, Y11
	VPADDQ     Y8, Y0, Y0
	VPADDQ     Y9, Y1, Y1
	VPADDQ     Y10, Y2, Y2
	VPADDQ     Y11, Y3, Y3
	ADDQ       $64, SI
	ADDQ       $64, DI
	SUBQ       $64, CX
	CMPQ       CX, $64
	JAE        copyloop64

copytail32:
	XORQ R8, R8
	CMPQ CX, $32
	JB   copytail8
	VMOVDQU    0(SI), Y4
	VMOVDQU    Y4, 0(DI)
	VPUNPCKLDQ Y15, Y4, Y8
	VPUNPCKHDQ Y15, Y4, Y9
	VPADDQ     Y8, Y0, Y0
	VPADDQ     Y9, Y1, Y1
	ADDQ       $32, SI
	ADDQ       $32, DI
	SUBQ       $32, CX

copytail8:
	CMPQ CX, $8
	JB   copytail4
	MOVQ (SI), AX
	MOVQ AX, (DI)
	MOVL AX, BX
	SHRQ $32, AX
	ADDQ BX, R8
	ADDQ AX, R8
	ADDQ $8, SI
	ADDQ $8, DI
	SUBQ $8, CX
	JMP  copytail8

copytail4:
	CMPQ CX, $4
	JB   copyreduce
	MOVL (SI), AX
	MOVL AX, (DI)
	ADDQ AX, R8

copyreduce:
	VPADDQ       Y1, Y0, Y0
	VPADDQ       Y3, Y2, Y2
	VPADDQ       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ       X1, X0, X0
	VPEXTRQ      $1, X0, BX
	VMOVQ        X0, AX
	ADDQ         BX, AX
	ADDQ         R8, AX
	VZEROUPPER
	MOVQ         AX, ret+24(FP)
	RET
