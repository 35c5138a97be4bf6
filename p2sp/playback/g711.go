package playback

// linearToMuLaw encodes a 16-bit sample as G.711 μ-law (the ITU reference
// algorithm: bias 0x84, clip 32635).
func linearToMuLaw(s int16) byte {
	const bias, clip = 0x84, 32635
	x := int(s)
	sign := 0
	if x < 0 {
		x, sign = -x, 0x80
	}
	x = min(x, clip) + bias
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mantissa := x >> (exp + 3) & 0x0F
	return ^byte(sign | exp<<4 | mantissa)
}
