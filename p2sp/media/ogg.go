package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Ogg page header flags.
const (
	OggContinued = 0x01 // the page's first packet continues one from the page before
	OggBOS       = 0x02 // first page of a logical stream
	OggEOS       = 0x04 // last page of a logical stream
)

// maxOggPacket bounds a packet assembled from pages, so a garbage file
// cannot make a reader allocate without end.
const maxOggPacket = 16 << 20

// OggPage is one page of an Ogg file, its CRC verified.
type OggPage struct {
	Offset     int64 // where the page starts in the file
	HeaderType byte  // OggContinued | OggBOS | OggEOS
	Granule    int64 // -1: no packet ends on this page
	Serial     uint32
	Sequence   uint32
	Lacing     []byte // the segment table
	Body       []byte
}

// OggReader reads the pages of an Ogg file in order, and the packets they
// carry.
type OggReader struct {
	r    io.ReaderAt
	size int64
	off  int64

	page    *OggPage // the page packets are being taken from
	seg     int      // next segment of page
	bodyOff int      // where that segment starts in page.Body
	partial map[uint32][]byte

	checkPage func(*OggPage) error // called on each page NextPacket reads
}

// NewOggReader reads the Ogg pages in the first size bytes of r.
func NewOggReader(r io.ReaderAt, size int64) *OggReader {
	return &OggReader{r: r, size: size, partial: map[uint32][]byte{}}
}

// NextPage returns the next page, or io.EOF after the last. A page that
// does not start with the capture pattern, runs past the end of the file or
// fails its CRC is an error.
func (o *OggReader) NextPage() (*OggPage, error) {
	if o.off == o.size {
		return nil, io.EOF
	}
	h, err := readAt(o.r, o.off, 27, "ogg: page header")
	if err != nil {
		return nil, err
	}
	if string(h[0:4]) != "OggS" {
		return nil, fmt.Errorf("ogg: no capture pattern at offset %d", o.off)
	}
	if h[4] != 0 {
		return nil, fmt.Errorf("ogg: page at offset %d: version %d", o.off, h[4])
	}
	p := &OggPage{
		Offset:     o.off,
		HeaderType: h[5],
		Granule:    int64(binary.LittleEndian.Uint64(h[6:])),
		Serial:     binary.LittleEndian.Uint32(h[14:]),
		Sequence:   binary.LittleEndian.Uint32(h[18:]),
	}
	if p.HeaderType&^(OggContinued|OggBOS|OggEOS) != 0 {
		return nil, fmt.Errorf("ogg: page at offset %d: header type %#x", o.off, p.HeaderType)
	}
	if p.Lacing, err = readAt(o.r, o.off+27, int(h[26]), "ogg: segment table"); err != nil {
		return nil, err
	}
	n := 0
	for _, l := range p.Lacing {
		n += int(l)
	}
	if o.off+27+int64(len(p.Lacing))+int64(n) > o.size {
		return nil, fmt.Errorf("ogg: page at offset %d claims %d body bytes, %d left: truncated", o.off, n, o.size-o.off-27-int64(len(p.Lacing)))
	}
	if p.Body, err = readAt(o.r, o.off+27+int64(len(p.Lacing)), n, "ogg: page body"); err != nil {
		return nil, err
	}
	want := binary.LittleEndian.Uint32(h[22:])
	clear(h[22:26])
	crc := oggCRC(oggCRC(oggCRC(0, h), p.Lacing), p.Body)
	if crc != want {
		return nil, fmt.Errorf("ogg: page at offset %d: CRC %08x, header says %08x", o.off, crc, want)
	}
	o.off += 27 + int64(len(p.Lacing)) + int64(n)
	return p, nil
}

// OggPacket is one packet of a logical stream.
type OggPacket struct {
	Serial uint32
	Data   []byte
	// Granule is the granule position of the page the packet ends on; it
	// is the stream's position at the end of the page's last packet.
	Granule int64
	// LastOnPage: no other packet ends on this page after this one.
	LastOnPage bool
	// EOS: the packet ends on the stream's last page.
	EOS bool
}

// NextPacket returns the next complete packet of any logical stream, or
// io.EOF after the last. Packets continued across pages are joined; a page
// that should continue a packet and does not (or the reverse) is an error.
func (o *OggReader) NextPacket() (OggPacket, error) {
	for {
		if o.page == nil || o.seg == len(o.page.Lacing) {
			p, err := o.NextPage()
			if err != nil {
				return OggPacket{}, err
			}
			_, cont := o.partial[p.Serial]
			if cont != (p.HeaderType&OggContinued != 0) {
				if cont {
					return OggPacket{}, fmt.Errorf("ogg: page at offset %d: stream %08x left a packet unfinished", p.Offset, p.Serial)
				}
				return OggPacket{}, fmt.Errorf("ogg: page at offset %d continues a packet that was never started", p.Offset)
			}
			if o.checkPage != nil {
				if err := o.checkPage(p); err != nil {
					return OggPacket{}, err
				}
			}
			o.page, o.seg, o.bodyOff = p, 0, 0
			continue
		}
		p := o.page
		l := int(p.Lacing[o.seg])
		part := o.partial[p.Serial]
		if len(part)+l > maxOggPacket {
			return OggPacket{}, fmt.Errorf("ogg: packet in stream %08x longer than %d bytes", p.Serial, maxOggPacket)
		}
		part = append(part, p.Body[o.bodyOff:o.bodyOff+l]...)
		o.bodyOff += l
		o.seg++
		if l == 255 {
			o.partial[p.Serial] = part
			continue
		}
		delete(o.partial, p.Serial)
		last := true
		for _, v := range p.Lacing[o.seg:] {
			if v < 255 {
				last = false
				break
			}
		}
		return OggPacket{Serial: p.Serial, Data: part, Granule: p.Granule, LastOnPage: last, EOS: p.HeaderType&OggEOS != 0}, nil
	}
}

// OggCodec is what an Ogg logical stream carries.
type OggCodec struct {
	Name       string // "opus", "vorbis", "flac", "speex", "theora", "skeleton"
	Video      bool
	Channels   int
	SampleRate int // granule positions count samples at this rate (0: not audio)
	PreSkip    int // Opus: samples to drop at the start
}

// ParseOggCodec identifies a logical stream by its first packet.
func ParseOggCodec(first []byte) (OggCodec, error) {
	switch {
	case bytes.HasPrefix(first, []byte("OpusHead")):
		if len(first) < 19 {
			return OggCodec{}, fmt.Errorf("ogg: OpusHead of %d bytes, want at least 19", len(first))
		}
		if first[8]&0xF0 != 0 {
			return OggCodec{}, fmt.Errorf("ogg: OpusHead version %d", first[8])
		}
		c := OggCodec{Name: "opus", Channels: int(first[9]), SampleRate: 48000, PreSkip: int(binary.LittleEndian.Uint16(first[10:]))}
		if c.Channels == 0 {
			return c, fmt.Errorf("ogg: OpusHead: 0 channels")
		}
		return c, nil
	case bytes.HasPrefix(first, []byte("\x01vorbis")):
		if len(first) < 30 {
			return OggCodec{}, fmt.Errorf("ogg: Vorbis identification header of %d bytes, want 30", len(first))
		}
		c := OggCodec{Name: "vorbis", Channels: int(first[11]), SampleRate: int(binary.LittleEndian.Uint32(first[12:]))}
		if c.Channels == 0 || c.SampleRate == 0 || first[29]&1 == 0 {
			return c, fmt.Errorf("ogg: Vorbis identification header: %d channels, %d Hz, framing bit %d", c.Channels, c.SampleRate, first[29]&1)
		}
		return c, nil
	case bytes.HasPrefix(first, []byte("\x7fFLAC")):
		if len(first) < 51 || string(first[9:13]) != "fLaC" {
			return OggCodec{}, fmt.Errorf("ogg: FLAC mapping header of %d bytes without its STREAMINFO", len(first))
		}
		si := first[17:]
		c := OggCodec{Name: "flac", SampleRate: int(si[10])<<12 | int(si[11])<<4 | int(si[12])>>4, Channels: int(si[12]>>1&7) + 1}
		if c.SampleRate == 0 {
			return c, fmt.Errorf("ogg: FLAC STREAMINFO: sample rate 0")
		}
		return c, nil
	case bytes.HasPrefix(first, []byte("Speex   ")):
		if len(first) < 80 {
			return OggCodec{}, fmt.Errorf("ogg: Speex header of %d bytes, want 80", len(first))
		}
		c := OggCodec{Name: "speex", SampleRate: int(binary.LittleEndian.Uint32(first[36:])), Channels: int(binary.LittleEndian.Uint32(first[48:]))}
		if c.SampleRate == 0 || c.Channels == 0 {
			return c, fmt.Errorf("ogg: Speex header: %d channels, %d Hz", c.Channels, c.SampleRate)
		}
		return c, nil
	case bytes.HasPrefix(first, []byte("\x80theora")):
		return OggCodec{Name: "theora", Video: true}, nil
	case bytes.HasPrefix(first, []byte("fishead\x00")):
		return OggCodec{Name: "skeleton"}, nil
	}
	return OggCodec{}, errors.New("ogg: stream of an unknown codec")
}

// secondHeader is the prefix the second packet of a stream must have.
var secondHeader = map[string]string{"opus": "OpusTags", "vorbis": "\x03vorbis", "theora": "\x81theora"}

type oggStream struct {
	codec   OggCodec
	packets int
	nextSeq uint32
	granule int64
	eos     bool
}

func probeOgg(r io.ReaderAt, size int64) (Info, error) {
	o := NewOggReader(r, size)
	streams := map[uint32]*oggStream{}
	o.checkPage = func(p *OggPage) error { return checkOggPage(streams, p) }
	for {
		pkt, err := o.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Info{}, err
		}
		s := streams[pkt.Serial]
		s.packets++
		switch {
		case s.packets == 1:
			if s.codec, err = ParseOggCodec(pkt.Data); err != nil {
				return Info{}, fmt.Errorf("%w (stream %08x)", err, pkt.Serial)
			}
		case s.packets == 2:
			if want, ok := secondHeader[s.codec.Name]; ok && !bytes.HasPrefix(pkt.Data, []byte(want)) {
				return Info{}, fmt.Errorf("ogg: stream %08x (%s): second packet is not its %q header", pkt.Serial, s.codec.Name, want)
			}
		}
	}
	if len(streams) == 0 {
		return Info{}, fmt.Errorf("ogg: no pages")
	}
	info := Info{Type: TypeOgg}
	audio := false
	for serial, s := range streams {
		if s.packets == 0 {
			return Info{}, fmt.Errorf("ogg: stream %08x has no complete packet", serial)
		}
		if want, ok := secondHeader[s.codec.Name]; ok && s.packets < 2 {
			return Info{}, fmt.Errorf("ogg: stream %08x (%s) ends before its %q header", serial, s.codec.Name, want)
		}
		if !s.eos {
			return Info{}, fmt.Errorf("ogg: stream %08x (%s) ends without its end-of-stream page: truncated", serial, s.codec.Name)
		}
		if s.codec.Video {
			info.Type = TypeOggVideo
		}
		if s.codec.SampleRate > 0 {
			audio = true
			if samples := s.granule - int64(s.codec.PreSkip); samples > 0 {
				info.Duration = max(info.Duration, time.Duration(samples*int64(time.Second)/int64(s.codec.SampleRate)))
			}
		}
	}
	if !audio && info.Type != TypeOggVideo {
		return Info{}, fmt.Errorf("ogg: no audio or video stream")
	}
	return info, nil
}

// checkOggPage keeps each logical stream's pages in order: begun by a BOS
// page, numbered without gaps, nothing after the EOS page.
func checkOggPage(streams map[uint32]*oggStream, p *OggPage) error {
	s := streams[p.Serial]
	if s == nil {
		if p.HeaderType&OggBOS == 0 {
			return fmt.Errorf("ogg: page at offset %d: stream %08x starts without a beginning-of-stream page", p.Offset, p.Serial)
		}
		s = &oggStream{nextSeq: p.Sequence, granule: -1}
		streams[p.Serial] = s
	} else if p.HeaderType&OggBOS != 0 {
		return fmt.Errorf("ogg: page at offset %d: stream %08x begins twice", p.Offset, p.Serial)
	}
	if s.eos {
		return fmt.Errorf("ogg: page at offset %d: stream %08x continues after its end-of-stream page", p.Offset, p.Serial)
	}
	if p.Sequence != s.nextSeq {
		return fmt.Errorf("ogg: page at offset %d: stream %08x page %d, want %d (a page is missing)", p.Offset, p.Serial, p.Sequence, s.nextSeq)
	}
	s.nextSeq++
	if p.Granule != -1 {
		s.granule = p.Granule
	}
	s.eos = p.HeaderType&OggEOS != 0
	return nil
}

// Append appends the page, with its CRC computed, to b. The caller fills
// Lacing and Body (Lacing's values must sum to len(Body)).
func (p *OggPage) Append(b []byte) []byte {
	start := len(b)
	b = append(b, "OggS"...)
	b = append(b, 0, p.HeaderType)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Granule))
	b = binary.LittleEndian.AppendUint32(b, p.Serial)
	b = binary.LittleEndian.AppendUint32(b, p.Sequence)
	b = append(b, 0, 0, 0, 0, byte(len(p.Lacing)))
	b = append(b, p.Lacing...)
	b = append(b, p.Body...)
	binary.LittleEndian.PutUint32(b[start+22:], oggCRC(0, b[start:]))
	return b
}
