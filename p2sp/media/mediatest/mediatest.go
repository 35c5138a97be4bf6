// Package mediatest writes small valid media files for tests: WAV (PCM and
// G.711 μ-law), Ogg Opus (with real Opus TOC bytes; the frames are not
// decodable audio) and MP4 (one track, its sample tables pointing into
// mdat). Parsers, the origin's records and the player are tested on them
// without ffmpeg; tests that need decodable media use ffmpeg when installed.
package mediatest

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/mediastack/mediastack/p2sp/media"
)

// PCMWAV is a 16-bit PCM WAV of a 440 Hz tone.
func PCMWAV(rate, channels int, d time.Duration) []byte {
	frames := int(int64(rate) * int64(d) / int64(time.Second))
	data := make([]byte, 0, frames*channels*2)
	for i := range frames {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		for range channels {
			data = binary.LittleEndian.AppendUint16(data, uint16(v))
		}
	}
	return wav(media.WAVFormatPCM, rate, channels, 16, data)
}

// MuLawWAV is an 8 kHz mono G.711 μ-law WAV whose sample i is byte(i).
func MuLawWAV(d time.Duration) []byte {
	n := int(8000 * int64(d) / int64(time.Second))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i)
	}
	return wav(media.WAVFormatMuLaw, 8000, 1, 8, data)
}

func wav(format uint16, rate, channels, bits int, data []byte) []byte {
	align := channels * bits / 8
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(4+8+16+8+len(data)+len(data)&1))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, format)
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*align))
	b = binary.LittleEndian.AppendUint16(b, uint16(align))
	b = binary.LittleEndian.AppendUint16(b, uint16(bits))
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	if len(data)&1 == 1 {
		b = append(b, 0)
	}
	return b
}

// OpusPreSkip is the pre-skip OggOpus writes in its OpusHead.
const OpusPreSkip = 312

// OpusPacket is packet i of OggOpus: a CELT fullband 20 ms TOC byte (config
// 31, one frame) and 3 bytes naming i.
func OpusPacket(i int) []byte {
	return []byte{31 << 3, byte(i >> 16), byte(i >> 8), byte(i)}
}

// OggOpus is an Ogg Opus file (mono, 48 kHz) of n OpusPacket packets of 20
// ms, perPage packets to a page, ending with an end-of-stream page. It plays
// for n×20 ms less the pre-skip.
func OggOpus(n, perPage int) []byte {
	const serial = 0x6d656469
	head := []byte("OpusHead")
	head = append(head, 1, 1)
	head = binary.LittleEndian.AppendUint16(head, OpusPreSkip)
	head = binary.LittleEndian.AppendUint32(head, 48000)
	head = append(head, 0, 0, 0)
	tags := []byte("OpusTags")
	tags = binary.LittleEndian.AppendUint32(tags, 9)
	tags = append(tags, "mediatest"...)
	tags = binary.LittleEndian.AppendUint32(tags, 0)

	var b []byte
	seq := uint32(0)
	page := func(flags byte, granule int64, packets ...[]byte) {
		p := media.OggPage{HeaderType: flags, Granule: granule, Serial: serial, Sequence: seq}
		for _, pkt := range packets {
			p.Lacing = append(p.Lacing, Lacing(len(pkt))...)
			p.Body = append(p.Body, pkt...)
		}
		b = p.Append(b)
		seq++
	}
	page(media.OggBOS, 0, head)
	page(0, 0, tags)
	granule := int64(0) // RFC 7845: samples decoded, the pre-skip among them
	for i := 0; i < n; i += perPage {
		var pkts [][]byte
		for j := i; j < min(i+perPage, n); j++ {
			pkts = append(pkts, OpusPacket(j))
			granule += 960
		}
		flags := byte(0)
		if i+perPage >= n {
			flags = media.OggEOS
		}
		page(flags, granule, pkts...)
	}
	if n == 0 {
		page(media.OggEOS, granule)
	}
	return b
}

// Lacing is the segment table entries of one packet of n bytes (n < 255×255).
func Lacing(n int) []byte {
	l := make([]byte, n/255+1)
	for i := range l[:len(l)-1] {
		l[i] = 255
	}
	l[len(l)-1] = byte(n % 255)
	return l
}

// MP4 is an MP4 with one track ("vide" or "soun" handler) whose mvhd says d
// (timescale 1000), samples samples of 100 bytes in mdat, one chunk. With
// moovLast the index follows the media data, as a recorder writes it.
func MP4(handler string, d time.Duration, samples int, moovLast bool) []byte {
	ftyp := bx("ftyp", []byte("isom\x00\x00\x02\x00isomiso2mp41"))
	payload := make([]byte, samples*100)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	mdat := bx("mdat", payload)
	// The chunk offset depends on where mdat lands; build moov twice.
	moov := mp4Moov(handler, d, samples, 0)
	mdatStart := len(ftyp) + len(moov) + 8
	if moovLast {
		mdatStart = len(ftyp) + 8
	}
	moov = mp4Moov(handler, d, samples, uint32(mdatStart))
	out := append([]byte{}, ftyp...)
	if moovLast {
		return append(append(out, mdat...), moov...)
	}
	return append(append(out, moov...), mdat...)
}

func mp4Moov(handler string, d time.Duration, samples int, chunkOffset uint32) []byte {
	ms := uint32(d / time.Millisecond)
	mvhd := make([]byte, 100)
	binary.BigEndian.PutUint32(mvhd[12:], 1000)
	binary.BigEndian.PutUint32(mvhd[16:], ms)
	binary.BigEndian.PutUint32(mvhd[96:], 2) // next track id
	tkhd := make([]byte, 84)
	binary.BigEndian.PutUint32(tkhd[0:], 3) // enabled, in movie
	binary.BigEndian.PutUint32(tkhd[12:], 1)
	binary.BigEndian.PutUint32(tkhd[20:], ms)
	mdhd := make([]byte, 24)
	binary.BigEndian.PutUint32(mdhd[12:], 1000)
	binary.BigEndian.PutUint32(mdhd[16:], ms)
	hdlr := append(make([]byte, 8), handler...)
	hdlr = append(hdlr, make([]byte, 13)...)
	stsd := binary.BigEndian.AppendUint32(make([]byte, 4), 0)
	stts := binary.BigEndian.AppendUint32(make([]byte, 4), 1)
	stts = binary.BigEndian.AppendUint32(stts, uint32(samples))
	stts = binary.BigEndian.AppendUint32(stts, uint32(int(ms)/max(samples, 1)))
	stsc := binary.BigEndian.AppendUint32(make([]byte, 4), 1)
	stsc = binary.BigEndian.AppendUint32(stsc, 1)
	stsc = binary.BigEndian.AppendUint32(stsc, uint32(samples))
	stsc = binary.BigEndian.AppendUint32(stsc, 1)
	stsz := binary.BigEndian.AppendUint32(make([]byte, 4), 100)
	stsz = binary.BigEndian.AppendUint32(stsz, uint32(samples))
	stco := binary.BigEndian.AppendUint32(make([]byte, 4), 1)
	stco = binary.BigEndian.AppendUint32(stco, chunkOffset)
	stbl := bx("stbl", bx("stsd", stsd), bx("stts", stts), bx("stsc", stsc), bx("stsz", stsz), bx("stco", stco))
	mdia := bx("mdia", bx("mdhd", mdhd), bx("hdlr", hdlr), bx("minf", stbl))
	return bx("moov", bx("mvhd", mvhd), bx("trak", bx("tkhd", tkhd), mdia))
}

// bx is a box of type typ around the concatenated payloads.
func bx(typ string, payloads ...[]byte) []byte {
	n := 8
	for _, p := range payloads {
		n += len(p)
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 0, n), uint32(n))
	b = append(b, typ...)
	for _, p := range payloads {
		b = append(b, p...)
	}
	return b
}
