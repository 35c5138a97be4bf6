package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// maxMoov bounds the moov box read into memory.
const maxMoov = 256 << 20

// topLevelBoxes are the box types an ISO BMFF file starts with.
var topLevelBoxes = map[string]bool{
	"ftyp": true, "styp": true, "moov": true, "mdat": true, "free": true, "skip": true,
	"wide": true, "pdin": true, "uuid": true, "moof": true, "mfra": true, "meta": true, "sidx": true,
}

func isMP4Box(typ []byte) bool { return topLevelBoxes[string(typ)] }

// box is one ISO BMFF box: its type and where its payload lies.
type box struct {
	typ        string
	off        int64 // the box's first byte
	start, end int64 // its payload
}

// nextBox reads the box header at off, which must end by end.
func nextBox(r io.ReaderAt, off, end int64, topLevel bool) (box, error) {
	h, err := readAt(r, off, 8, "mp4: box header")
	if err != nil {
		return box{}, err
	}
	b := box{typ: string(h[4:8]), off: off, start: off + 8}
	size := int64(binary.BigEndian.Uint32(h[0:4]))
	switch size {
	case 0:
		if !topLevel {
			return b, fmt.Errorf("mp4: %q box at offset %d: size 0 inside another box", b.typ, off)
		}
		size = end - off
	case 1:
		l, err := readAt(r, off+8, 8, "mp4: box size")
		if err != nil {
			return b, err
		}
		large := binary.BigEndian.Uint64(l)
		if large > uint64(end-off) {
			return b, fmt.Errorf("mp4: %q box at offset %d claims %d bytes, %d left: truncated", b.typ, off, large, end-off)
		}
		size = int64(large)
		b.start += 8
	}
	if size < b.start-off {
		return b, fmt.Errorf("mp4: %q box at offset %d: size %d smaller than its header", b.typ, off, size)
	}
	if size > end-off {
		return b, fmt.Errorf("mp4: %q box at offset %d claims %d bytes, %d left: truncated", b.typ, off, size, end-off)
	}
	b.end = off + size
	return b, nil
}

// children lists the boxes inside payload p (a whole box in memory, whose
// payload starts at file offset base).
func children(r io.ReaderAt, start, end int64) ([]box, error) {
	var out []box
	for off := start; off < end; {
		if end-off < 8 {
			return nil, fmt.Errorf("mp4: %d stray bytes at offset %d", end-off, off)
		}
		b, err := nextBox(r, off, end, false)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
		off = b.end
	}
	return out, nil
}

func find(bs []box, typ string) (box, bool) {
	for _, b := range bs {
		if b.typ == typ {
			return b, true
		}
	}
	return box{}, false
}

// mp4Tree is the moov box in memory, parsed on demand.
type mp4Tree struct {
	r    io.ReaderAt
	size int64
}

func (t mp4Tree) need(parent box, path string, typ string) (box, []box, error) {
	kids, err := children(t.r, parent.start, parent.end)
	if err != nil {
		return box{}, nil, err
	}
	b, ok := find(kids, typ)
	if !ok {
		return box{}, nil, fmt.Errorf("mp4: %s has no %s box", path, typ)
	}
	return b, kids, nil
}

func probeMP4(r io.ReaderAt, size int64) (Info, error) {
	var top []box
	for off := int64(0); off < size; {
		if size-off < 8 {
			return Info{}, fmt.Errorf("mp4: %d stray bytes at offset %d: truncated", size-off, off)
		}
		b, err := nextBox(r, off, size, true)
		if err != nil {
			return Info{}, err
		}
		top = append(top, b)
		off = b.end
	}
	if _, ok := find(top, "ftyp"); !ok {
		return Info{}, fmt.Errorf("mp4: no ftyp box")
	}
	moov, ok := find(top, "moov")
	if !ok {
		return Info{}, fmt.Errorf("mp4: no moov box (the index): truncated or not finished")
	}
	if moov.end-moov.start > maxMoov {
		return Info{}, fmt.Errorf("mp4: moov box of %d bytes, more than %d", moov.end-moov.start, maxMoov)
	}
	// Read moov once and walk it in memory.
	buf, err := readAt(r, moov.start, int(moov.end-moov.start), "mp4: moov box")
	if err != nil {
		return Info{}, err
	}
	mem := moovReader{buf: buf, base: moov.start}
	t := mp4Tree{r: mem, size: size}
	mvhd, kids, err := t.need(moov, "moov", "mvhd")
	if err != nil {
		return Info{}, err
	}
	info := Info{Type: TypeMP4Audio}
	if info.Duration, err = mvhdDuration(mem, mvhd); err != nil {
		return Info{}, err
	}
	_, fragmented := find(kids, "mvex")
	tracks := 0
	video := false
	for _, trak := range kids {
		if trak.typ != "trak" {
			continue
		}
		tracks++
		handler, err := t.checkTrak(trak, tracks, fragmented)
		if err != nil {
			return Info{}, err
		}
		video = video || handler == "vide"
	}
	if tracks == 0 {
		return Info{}, fmt.Errorf("mp4: moov has no trak box")
	}
	if video {
		info.Type = TypeMP4
	}
	if _, ok := find(top, "mdat"); !ok {
		return Info{}, fmt.Errorf("mp4: no mdat box (no media data)")
	}
	return info, nil
}

// checkTrak checks that track n has its header and its sample tables (the
// index a player needs), with chunk offsets inside the file, and returns its
// handler type ("vide", "soun", ...).
func (t mp4Tree) checkTrak(trak box, n int, fragmented bool) (string, error) {
	path := fmt.Sprintf("moov/trak[%d]", n)
	if _, _, err := t.need(trak, path, "tkhd"); err != nil {
		return "", err
	}
	mdia, _, err := t.need(trak, path, "mdia")
	if err != nil {
		return "", err
	}
	path += "/mdia"
	if _, _, err := t.need(mdia, path, "mdhd"); err != nil {
		return "", err
	}
	hdlr, _, err := t.need(mdia, path, "hdlr")
	if err != nil {
		return "", err
	}
	h, err := boxPayload(t.r, hdlr, 12)
	if err != nil {
		return "", err
	}
	minf, _, err := t.need(mdia, path, "minf")
	if err != nil {
		return "", err
	}
	stbl, _, err := t.need(minf, path+"/minf", "stbl")
	if err != nil {
		return "", err
	}
	path += "/minf/stbl"
	kids, err := children(t.r, stbl.start, stbl.end)
	if err != nil {
		return "", err
	}
	for _, want := range [][]string{{"stsd"}, {"stts"}, {"stsc"}, {"stsz", "stz2"}, {"stco", "co64"}} {
		found := false
		for _, typ := range want {
			_, ok := find(kids, typ)
			found = found || ok
		}
		if !found {
			return "", fmt.Errorf("mp4: %s has no %s box", path, want[0])
		}
	}
	if !fragmented {
		if err := t.checkChunkOffsets(kids, path); err != nil {
			return "", err
		}
	}
	return string(h[8:12]), nil
}

// checkChunkOffsets checks that every chunk the index points at starts
// inside the file.
func (t mp4Tree) checkChunkOffsets(stbl []box, path string) error {
	co, wide := find(stbl, "co64")
	if !wide {
		co, _ = find(stbl, "stco")
	}
	h, err := readAt(t.r, co.start, 8, "mp4: "+co.typ+" box")
	if err != nil {
		return err
	}
	count := int64(binary.BigEndian.Uint32(h[4:8]))
	width := int64(4)
	if wide {
		width = 8
	}
	if count*width > co.end-co.start-8 {
		return fmt.Errorf("mp4: %s/%s: %d entries do not fit in %d bytes", path, co.typ, count, co.end-co.start-8)
	}
	entries, err := readAt(t.r, co.start+8, int(count*width), "mp4: "+co.typ+" entries")
	if err != nil {
		return err
	}
	for i := int64(0); i < count; i++ {
		var off uint64
		if wide {
			off = binary.BigEndian.Uint64(entries[i*8:])
		} else {
			off = uint64(binary.BigEndian.Uint32(entries[i*4:]))
		}
		if off >= uint64(t.size) {
			return fmt.Errorf("mp4: %s/%s: chunk %d at offset %d, past the end of the file (%d bytes): truncated", path, co.typ, i, off, t.size)
		}
	}
	return nil
}

func mvhdDuration(r io.ReaderAt, mvhd box) (time.Duration, error) {
	v, err := boxPayload(r, mvhd, 20)
	if err != nil {
		return 0, err
	}
	var timescale, duration uint64
	switch v[0] {
	case 0:
		timescale, duration = uint64(binary.BigEndian.Uint32(v[12:])), uint64(binary.BigEndian.Uint32(v[16:]))
		if duration == 0xFFFFFFFF {
			duration = 0
		}
	case 1:
		b, err := boxPayload(r, mvhd, 32)
		if err != nil {
			return 0, err
		}
		timescale, duration = uint64(binary.BigEndian.Uint32(b[20:])), binary.BigEndian.Uint64(b[24:])
		if duration == ^uint64(0) {
			duration = 0
		}
	default:
		return 0, fmt.Errorf("mp4: mvhd version %d", v[0])
	}
	if timescale == 0 {
		return 0, fmt.Errorf("mp4: mvhd timescale 0")
	}
	sec := duration / timescale
	if sec > uint64(time.Duration(1<<62)/time.Second) {
		return 0, fmt.Errorf("mp4: mvhd duration %d/%d s is out of range", duration, timescale)
	}
	return time.Duration(sec)*time.Second + time.Duration((duration%timescale)*uint64(time.Second)/timescale), nil
}

// boxPayload reads the first n bytes of b's payload, which must have them.
func boxPayload(r io.ReaderAt, b box, n int) ([]byte, error) {
	if b.end-b.start < int64(n) {
		return nil, fmt.Errorf("mp4: %s box at offset %d: %d bytes, want at least %d", b.typ, b.off, b.end-b.start, n)
	}
	return readAt(r, b.start, n, "mp4: "+b.typ+" box")
}

// moovReader reads file offsets inside the moov box from memory.
type moovReader struct {
	buf  []byte
	base int64
}

func (m moovReader) ReadAt(p []byte, off int64) (int, error) {
	off -= m.base
	if off < 0 || off > int64(len(m.buf)) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
