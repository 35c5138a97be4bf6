//go:build !race

#include "textflag.h"

// func StoreRelease(w *atomic.Uint64, v uint64)
// atomic.Uint64's value is its only non-empty field, at offset 0.
TEXT ·StoreRelease(SB), NOSPLIT, $0-16
	MOVQ w+0(FP), AX
	MOVQ v+8(FP), BX
	MOVQ BX, (AX)
	RET
