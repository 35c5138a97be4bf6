package p2spsim

import (
	"time"

	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

// SampleWAV is a playable WAV of about size bytes whose samples come from
// seed, so each seed gives another file (and id).
func SampleWAV(size int, seed uint64) []byte {
	b := mediatest.PCMWAV(48000, 2, time.Duration(size)*time.Second/(48000*2*2))
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 44; i < len(b); i++ { // past the RIFF/fmt/data headers
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}
