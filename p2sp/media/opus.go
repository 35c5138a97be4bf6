package media

import "fmt"

// opusFrameSamples is the frame length, in 48 kHz samples, of each Opus
// TOC configuration (RFC 6716 section 3.1).
var opusFrameSamples = [32]int{
	480, 960, 1920, 2880, // SILK NB 10, 20, 40, 60 ms
	480, 960, 1920, 2880, // SILK MB
	480, 960, 1920, 2880, // SILK WB
	480, 960, // hybrid SWB 10, 20 ms
	480, 960, // hybrid FB
	120, 240, 480, 960, // CELT NB 2.5, 5, 10, 20 ms
	120, 240, 480, 960, // CELT WB
	120, 240, 480, 960, // CELT SWB
	120, 240, 480, 960, // CELT FB
}

// OpusPacketSamples is how many 48 kHz samples an Opus packet decodes to,
// from its TOC byte and frame count (RFC 6716 section 3.2).
func OpusPacketSamples(pkt []byte) (int, error) {
	if len(pkt) == 0 {
		return 0, fmt.Errorf("opus: empty packet")
	}
	frames := 1
	switch pkt[0] & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(pkt) < 2 {
			return 0, fmt.Errorf("opus: code 3 packet without its frame count")
		}
		frames = int(pkt[1] & 0x3F)
	}
	n := frames * opusFrameSamples[pkt[0]>>3]
	if n == 0 || n > 5760 {
		return 0, fmt.Errorf("opus: packet of %d samples (want 1 to 120 ms)", n)
	}
	return n, nil
}
