package client

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/anacrolix/torrent"

	"github.com/mediastack/mediastack/p2sp"
)

// StreamReadahead is how far ahead of a Stream's position the pieces are
// wanted first.
const StreamReadahead = 4 << 20

// Stream reads a file while Fetch downloads it, for a player that starts
// before the end (the playback component, 130). Bytes come from pieces that
// passed their hash; the whole file's SHA-256 and playability are checked
// by the fetch when it ends (Wait), after which the Stream reads the cached
// file.
type Stream struct {
	m      *Manager
	ctx    context.Context
	f      *flight
	record p2sp.Record

	mu   sync.Mutex
	r    torrent.Reader // nil once reading the cached file, or for a file that had no P2P info
	rpos int64          // r's position
	file *os.File
	pos  int64
	size int64
	// index is the MP4 index's pieces, fetched first and checked against
	// their hashes, from indexOff; nil when it is in the first piece.
	index    []byte
	indexOff int64
}

// Open returns a Stream of id: the cached file at once, or the file as its
// Fetch downloads it (started here unless one is running). A file without
// P2P info is read once its HTTP download is verified. For an MP4 whose
// index (moov) follows its media data, Open reads the index first, so a
// player has it before the first sample. ctx bounds Open and every Read;
// the fetch itself runs to its end regardless (Wait).
func (m *Manager) Open(ctx context.Context, id p2sp.FileID) (*Stream, error) {
	if _, err := p2sp.ParseFileID(string(id)); err != nil {
		return nil, err
	}
	s := &Stream{m: m, ctx: ctx}
	if path, ok := m.cachedPath(id); ok {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if err := s.setFile(f); err != nil {
			return nil, err
		}
		s.f = newFlight()
		s.f.res = Result{Path: path, Method: MethodCache}
		close(s.f.done)
		return s, nil
	}
	s.f = m.startFetch(id)
	select {
	case <-s.f.ready: // the torrent is added: stream from it
	case <-s.f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.f.t == nil { // no P2P info: the fetch is the only way
		select {
		case <-s.f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if s.f.err != nil {
			return nil, s.f.err
		}
		return s, s.openCached()
	}
	s.record, s.size = s.f.rec, s.f.rec.Size
	s.r = s.f.t.NewReader()
	s.r.SetContext(ctx)
	s.r.SetReadahead(StreamReadahead)
	if isMP4(s.record) {
		if err := s.indexFirst(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// startFetch starts a fetch of id in the background (or joins the one
// running) and returns its flight.
func (m *Manager) startFetch(id p2sp.FileID) *flight {
	f, busy, err := m.joinFlight(id)
	if err != nil {
		f = newFlight()
		f.err = err
		close(f.done)
		return f
	}
	if !busy {
		go m.fly(context.Background(), id, nil, f)
	}
	return f
}

// Record is the file's record (empty for a cached file).
func (s *Stream) Record() p2sp.Record { return s.record }

// Wait waits for the fetch behind the Stream and returns its result: the
// file verified and cached, or why not.
func (s *Stream) Wait(ctx context.Context) (Result, error) {
	select {
	case <-s.f.done:
		return s.f.res, s.f.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Read reads from the downloading file (the MP4 index from its verified
// copy), or from the cache once the fetch has ended well.
func (s *Stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil && s.fetchEnded() {
		if err := s.switchToFile(); err != nil {
			return 0, err
		}
	}
	if s.file != nil {
		return s.readFile(p)
	}
	if i := s.pos - s.indexOff; s.index != nil && i >= 0 && i < int64(len(s.index)) {
		n := copy(p, s.index[i:])
		s.pos += int64(n)
		return n, nil
	}
	if s.rpos != s.pos {
		if _, err := s.r.Seek(s.pos, io.SeekStart); err != nil {
			return 0, err
		}
		s.rpos = s.pos
	}
	n, err := s.r.Read(p)
	s.pos += int64(n)
	s.rpos = s.pos
	if err == nil || errors.Is(err, io.EOF) || n > 0 {
		return n, err
	}
	// The fetch drops its torrent when it completes: wait for the verdict
	// and go on from the cache.
	select {
	case <-s.f.done:
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
	if err := s.switchToFile(); err != nil {
		return 0, err
	}
	return s.readFile(p)
}

func (s *Stream) readFile(p []byte) (int, error) {
	n, err := s.file.ReadAt(p, s.pos)
	s.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// Seek sets the position of the next Read (io.SeekStart, SeekCurrent,
// SeekEnd).
func (s *Stream) Seek(offset int64, whence int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pos := offset
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		pos += s.pos
	case io.SeekEnd:
		pos += s.size
	default:
		return s.pos, fmt.Errorf("p2sp client: seek whence %d", whence)
	}
	if pos < 0 {
		return s.pos, errors.New("p2sp client: seek before the start")
	}
	s.pos = pos
	return pos, nil
}

// Close releases the Stream; the fetch goes on (Wait).
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.r != nil {
		err = s.r.Close()
		s.r = nil
	}
	if s.file != nil {
		err = errors.Join(err, s.file.Close())
		s.file = nil
	}
	return err
}

func (s *Stream) fetchEnded() bool {
	select {
	case <-s.f.done:
		return true
	default:
		return false
	}
}

// switchToFile goes on reading from the cached file at the same position,
// or returns why the fetch failed.
func (s *Stream) switchToFile() error {
	if s.f.err != nil {
		return s.f.err
	}
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
	return s.openCached()
}

func (s *Stream) openCached() error {
	f, err := os.Open(s.f.res.Path)
	if err != nil {
		return err
	}
	return s.setFile(f)
}

func (s *Stream) setFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.file, s.size, s.index = f, fi.Size(), nil
	return nil
}

func isMP4(rec p2sp.Record) bool {
	switch rec.MediaType {
	case "video/mp4", "audio/mp4":
		return true
	}
	return strings.HasSuffix(rec.Name, ".mp4") || strings.HasSuffix(rec.Name, ".m4a")
}

// maxBoxes bounds the walk of an MP4's top-level boxes.
const maxBoxes = 64

// indexFirst locates an MP4's index (moov) by reading its top-level box
// headers from the web server, and when the index lies beyond the first
// piece (a recorder writes it last), fetches the pieces that hold it
// over HTTP, checks each against its hash and keeps them: a player reads
// the index at once instead of after the whole download (the library's
// web seed streams a file in order).
func (s *Stream) indexFirst(ctx context.Context) error {
	url := s.m.opts.Origin + "/files/" + s.record.Name
	info := s.f.t.Info()
	for off, i := int64(0), 0; off+8 <= s.size && i < maxBoxes; i++ {
		hdr, err := s.m.getBytes(ctx, url, off, min(16, s.size-off))
		if err != nil {
			return fmt.Errorf("p2sp client: the MP4 box at %d: %w", off, err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		switch {
		case n == 0: // to the end of the file
			n = s.size - off
		case n == 1 && len(hdr) == 16: // a 64-bit size follows
			n = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if n < 8 || n > s.size-off {
			return nil // not ours to judge: the fetch's checks will
		}
		if string(hdr[4:8]) != "moov" {
			off += n
			continue
		}
		if off+n <= info.PieceLength {
			return nil // in the first piece, which the first read brings
		}
		first, last := off/info.PieceLength, (off+n-1)/info.PieceLength
		from := first * info.PieceLength
		b, err := s.m.getBytes(ctx, url, from, min(s.size, (last+1)*info.PieceLength)-from)
		if err != nil {
			return fmt.Errorf("p2sp client: the MP4 index: %w", err)
		}
		for p := first; p <= last; p++ {
			piece := info.Piece(int(p))
			data := b[piece.Offset()-from:][:piece.Length()]
			if want := piece.V1Hash(); !want.Ok || sha1.Sum(data) != [20]byte(want.Value) {
				return fmt.Errorf("p2sp client: the MP4 index: piece %d from the web server fails its hash", p)
			}
		}
		s.index, s.indexOff = b, from
		return nil
	}
	return nil
}
