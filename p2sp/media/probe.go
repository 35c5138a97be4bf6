package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Media types Probe returns.
const (
	TypeMP4      = "video/mp4"
	TypeMP4Audio = "audio/mp4"
	TypeWAV      = "audio/wav"
	TypeOgg      = "audio/ogg"
	TypeOggVideo = "video/ogg"
)

// ErrUnknownFormat: the file is none of the formats this package knows.
var ErrUnknownFormat = errors.New("media: unknown format (not MP4, WAV or Ogg)")

// Info is what Probe finds out about a file.
type Info struct {
	Type     string        // MIME type, one of the Type constants
	Duration time.Duration // 0 when the container does not say
}

// Probe identifies the file at path by its structure and returns its media
// type and duration. It checks the whole structure, as CheckPlayable does
// without ffprobe.
func Probe(path string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("media: %s: not a regular file", path)
	}
	info, err := ProbeReader(f, fi.Size())
	if err != nil {
		return Info{}, fmt.Errorf("%w (%s)", err, path)
	}
	return info, nil
}

// ProbeReader is Probe over the first size bytes of r.
func ProbeReader(r io.ReaderAt, size int64) (Info, error) {
	var head [12]byte
	n, err := r.ReadAt(head[:], 0)
	if n < len(head) {
		if err == nil || err == io.EOF {
			return Info{}, fmt.Errorf("%w: %d bytes", ErrUnknownFormat, size)
		}
		return Info{}, err
	}
	switch Sniff(head[:]) {
	case TypeWAV:
		w, err := ParseWAV(r, size)
		if err != nil {
			return Info{}, err
		}
		return Info{Type: TypeWAV, Duration: w.Duration()}, nil
	case TypeOgg:
		return probeOgg(r, size)
	case TypeMP4:
		return probeMP4(r, size)
	}
	return Info{}, ErrUnknownFormat
}

// Sniff names the container a file's first 12 bytes start: TypeWAV,
// TypeOgg (any Ogg), TypeMP4 (any ISO BMFF) or "". Unlike Probe it checks
// nothing more, so it suits a file still being downloaded.
func Sniff(head []byte) string {
	switch {
	case len(head) < 12:
		return ""
	case string(head[0:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return TypeWAV
	case string(head[0:4]) == "OggS":
		return TypeOgg
	case isMP4Box(head[4:8]):
		return TypeMP4
	}
	return ""
}

// Option changes how CheckPlayable checks.
type Option func(*options)

type options struct {
	ffprobe     bool
	ffprobePath string
}

// FFprobe asks CheckPlayable to run ffprobe too, when it is installed (on
// PATH); without it, or when it is not installed, only the built-in
// structure checks run.
func FFprobe(use bool) Option { return func(o *options) { o.ffprobe = use } }

// FFprobePath names the ffprobe binary (default: "ffprobe" on PATH).
func FFprobePath(path string) Option { return func(o *options) { o.ffprobePath = path } }

// CheckPlayable reports whether a player can use the file at path: its
// container parses from start to end, the structures a player needs first
// (MP4's moov with its sample tables, WAV's fmt, Ogg's codec header) are
// there and sane, nothing points past the end of the file, and (with
// FFprobe) ffprobe reads it without an error.
func CheckPlayable(ctx context.Context, path string, opts ...Option) error {
	o := options{ffprobePath: "ffprobe"}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := Probe(path); err != nil {
		return err
	}
	if !o.ffprobe {
		return nil
	}
	bin, err := exec.LookPath(o.ffprobePath)
	if err != nil {
		return nil // not installed: the built-in checks stand
	}
	return runFFprobe(ctx, bin, path)
}

// FFprobeInstalled reports whether CheckPlayable's FFprobe option finds an
// ffprobe on PATH.
func FFprobeInstalled() bool {
	_, err := exec.LookPath("ffprobe")
	return err == nil
}

func runFFprobe(ctx context.Context, bin, path string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "--", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	msg := strings.TrimSpace(stderr.String())
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("media: ffprobe %s: %w", path, ctx.Err())
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("media: ffprobe %s: %s", path, firstLine(msg))
	}
	if msg != "" {
		return fmt.Errorf("media: ffprobe %s: %s", path, firstLine(msg))
	}
	if strings.TrimSpace(string(out)) == "" {
		return fmt.Errorf("media: ffprobe %s: no format found", path)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// readAt reads exactly n bytes at off, naming what it was reading when the
// file ends first.
func readAt(r io.ReaderAt, off int64, n int, what string) ([]byte, error) {
	b := make([]byte, n)
	m, err := r.ReadAt(b, off)
	if m == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		return nil, fmt.Errorf("%s at offset %d: truncated (%d of %d bytes)", what, off, m, n)
	}
	return nil, err
}
