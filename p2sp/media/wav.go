package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// WAV format tags.
const (
	WAVFormatPCM        = 1
	WAVFormatFloat      = 3
	WAVFormatALaw       = 6
	WAVFormatMuLaw      = 7
	WAVFormatExtensible = 0xFFFE
)

// WAV is a parsed RIFF/WAVE file: its fmt chunk and where its samples are.
type WAV struct {
	Format        uint16 // format tag; for WAVE_FORMAT_EXTENSIBLE, the subformat's
	Channels      int
	SampleRate    int
	ByteRate      int
	BlockAlign    int
	BitsPerSample int
	DataOffset    int64 // first byte of the data chunk's samples
	DataSize      int64
}

// Duration is how long the samples play.
func (w WAV) Duration() time.Duration {
	if w.ByteRate <= 0 {
		return 0
	}
	sec := w.DataSize / int64(w.ByteRate)
	rem := w.DataSize % int64(w.ByteRate)
	return time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/int64(w.ByteRate))
}

// ParseWAV walks the RIFF chunks of the first size bytes of r: a sane fmt
// chunk before a data chunk that lies wholly inside the file.
func ParseWAV(r io.ReaderAt, size int64) (WAV, error) {
	var w WAV
	head, err := readAt(r, 0, 12, "wav: RIFF header")
	if err != nil {
		return w, err
	}
	if string(head[0:4]) != "RIFF" || string(head[8:12]) != "WAVE" {
		return w, fmt.Errorf("wav: no RIFF/WAVE header")
	}
	riffEnd := 8 + int64(binary.LittleEndian.Uint32(head[4:8]))
	if riffEnd > size {
		return w, fmt.Errorf("wav: RIFF chunk claims %d bytes, file has %d: truncated", riffEnd, size)
	}
	haveFmt := false
	for off := int64(12); off+8 <= riffEnd; {
		ch, err := readAt(r, off, 8, "wav: chunk header")
		if err != nil {
			return w, err
		}
		id := string(ch[0:4])
		n := int64(binary.LittleEndian.Uint32(ch[4:8]))
		body := off + 8
		if body+n > riffEnd {
			return w, fmt.Errorf("wav: %q chunk at offset %d claims %d bytes, %d left: truncated", id, off, n, riffEnd-body)
		}
		switch id {
		case "fmt ":
			if err := w.parseFmt(r, body, n); err != nil {
				return w, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return w, fmt.Errorf("wav: data chunk at offset %d before the fmt chunk", off)
			}
			w.DataOffset, w.DataSize = body, n
			return w, nil
		}
		off = body + n + n&1 // chunks are padded to an even length
	}
	if !haveFmt {
		return w, fmt.Errorf("wav: no fmt chunk")
	}
	return w, fmt.Errorf("wav: no data chunk")
}

func (w *WAV) parseFmt(r io.ReaderAt, off, n int64) error {
	if n < 16 {
		return fmt.Errorf("wav: fmt chunk of %d bytes, want at least 16", n)
	}
	b, err := readAt(r, off, int(min(n, 40)), "wav: fmt chunk")
	if err != nil {
		return err
	}
	w.Format = binary.LittleEndian.Uint16(b[0:])
	w.Channels = int(binary.LittleEndian.Uint16(b[2:]))
	w.SampleRate = int(binary.LittleEndian.Uint32(b[4:]))
	w.ByteRate = int(binary.LittleEndian.Uint32(b[8:]))
	w.BlockAlign = int(binary.LittleEndian.Uint16(b[12:]))
	w.BitsPerSample = int(binary.LittleEndian.Uint16(b[14:]))
	if w.Format == WAVFormatExtensible && len(b) >= 26 {
		w.Format = binary.LittleEndian.Uint16(b[24:]) // the subformat GUID's first two bytes
	}
	switch {
	case w.Channels == 0:
		return fmt.Errorf("wav: fmt chunk: 0 channels")
	case w.SampleRate == 0:
		return fmt.Errorf("wav: fmt chunk: sample rate 0")
	case w.BlockAlign == 0:
		return fmt.Errorf("wav: fmt chunk: block align 0")
	case w.ByteRate == 0:
		return fmt.Errorf("wav: fmt chunk: byte rate 0")
	}
	switch w.Format {
	case WAVFormatPCM, WAVFormatFloat, WAVFormatALaw, WAVFormatMuLaw:
		if w.BitsPerSample == 0 || w.BitsPerSample%8 != 0 {
			return fmt.Errorf("wav: fmt chunk: %d bits per sample", w.BitsPerSample)
		}
		if want := w.Channels * w.BitsPerSample / 8; w.BlockAlign != want {
			return fmt.Errorf("wav: fmt chunk: block align %d, want %d (%d channels × %d bits)", w.BlockAlign, want, w.Channels, w.BitsPerSample)
		}
		if want := w.SampleRate * w.BlockAlign; w.ByteRate != want {
			return fmt.Errorf("wav: fmt chunk: byte rate %d, want %d (%d Hz × %d bytes)", w.ByteRate, want, w.SampleRate, w.BlockAlign)
		}
	}
	return nil
}
