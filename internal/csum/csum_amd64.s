#include "textflag.h"

// Both functions sum little-endian 32-bit words: each 32-byte load is split
// into its eight dwords, zero-extended into 64-bit lanes by interleaving
// with a zero register (Y15), so the lanes never carry out, and four
// accumulators (Y0-Y3) keep the adds independent of each other. The last
// 4 to 28 bytes are summed 8 then 4 at a time into R8.

// ZERO_ACCS clears the accumulators and the zero register.
#define ZERO_ACCS \
	VPXOR Y0, Y0, Y0 \
	VPXOR Y1, Y1, Y1 \
	VPXOR Y2, Y2, Y2 \
	VPXOR Y3, Y3, Y3 \
	VPXOR Y15, Y15, Y15 \
	XORQ  R8, R8

// SUM32(src, accLo, accHi) adds the eight dwords of register src to two
// accumulators, using Y8 and Y9.
#define SUM32(src, accLo, accHi) \
	VPUNPCKLDQ Y15, src, Y8 \
	VPUNPCKHDQ Y15, src, Y9 \
	VPADDQ     Y8, accLo, accLo \
	VPADDQ     Y9, accHi, accHi

// REDUCE folds the accumulators and R8 into one 64-bit sum in AX.
#define REDUCE \
	VPADDQ       Y1, Y0, Y0 \
	VPADDQ       Y3, Y2, Y2 \
	VPADDQ       Y2, Y0, Y0 \
	VEXTRACTI128 $1, Y0, X1 \
	VPADDQ       X1, X0, X0 \
	VPEXTRQ      $1, X0, BX \
	VMOVQ        X0, AX \
	ADDQ         BX, AX \
	ADDQ         R8, AX \
	VZEROUPPER

// ADD_QWORD adds the two dwords of AX to R8.
#define ADD_QWORD \
	MOVL AX, BX \
	SHRQ $32, AX \
	ADDQ BX, R8 \
	ADDQ AX, R8

// func sumAVX2(p *byte, n int) uint64
//
// Sums the little-endian 32-bit words at p[0:n], n a multiple of 4.
TEXT ·sumAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	ZERO_ACCS
	CMPQ CX, $128
	JB   loop32

loop128:
	VMOVDQU 0(SI), Y4
	VMOVDQU 32(SI), Y5
	VMOVDQU 64(SI), Y6
	VMOVDQU 96(SI), Y7
	SUM32(Y4, Y0, Y1)
	SUM32(Y5, Y2, Y3)
	SUM32(Y6, Y0, Y1)
	SUM32(Y7, Y2, Y3)
	ADDQ    $128, SI
	SUBQ    $128, CX
	CMPQ    CX, $128
	JAE     loop128

loop32:
	CMPQ    CX, $32
	JB      tail8
	VMOVDQU 0(SI), Y4
	SUM32(Y4, Y0, Y1)
	ADDQ    $32, SI
	SUBQ    $32, CX
	JMP     loop32

tail8:
	CMPQ CX, $8
	JB   tail4
	MOVQ (SI), AX
	ADD_QWORD
	ADDQ $8, SI
	SUBQ $8, CX
	JMP  tail8

tail4:
	CMPQ CX, $4
	JB   done
	MOVL (SI), AX
	ADDQ AX, R8

done:
	REDUCE
	MOVQ AX, ret+16(FP)
	RET

// func copySumAVX2(dst, src *byte, n int) uint64
//
// sumAVX2 that also copies src[0:n] to dst[0:n] in the same pass, so the
// payload is read once: each load is stored and summed.
TEXT ·copySumAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	ZERO_ACCS

copyloop64:
	CMPQ    CX, $64
	JB      copyloop32
	VMOVDQU 0(SI), Y4
	VMOVDQU 32(SI), Y5
	VMOVDQU Y4, 0(DI)
	VMOVDQU Y5, 32(DI)
	SUM32(Y4, Y0, Y1)
	SUM32(Y5, Y2, Y3)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $64, CX
	JMP     copyloop64

copyloop32:
	CMPQ    CX, $32
	JB      copytail8
	VMOVDQU 0(SI), Y4
	VMOVDQU Y4, 0(DI)
	SUM32(Y4, Y0, Y1)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $32, CX

copytail8:
	CMPQ CX, $8
	JB   copytail4
	MOVQ (SI), AX
	MOVQ AX, (DI)
	ADD_QWORD
	ADDQ $8, SI
	ADDQ $8, DI
	SUBQ $8, CX
	JMP  copytail8

copytail4:
	CMPQ CX, $4
	JB   copydone
	MOVL (SI), AX
	MOVL AX, (DI)
	ADDQ AX, R8

copydone:
	REDUCE
	MOVQ AX, ret+24(FP)
	RET
