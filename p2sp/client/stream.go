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
// before the end (the playback component, 130). With P2P info, bytes come
// from pieces that passed their hash, the pieces around the read position
// wanted first (StreamReadahead); on the HTTP-only path, from the download
// as it grows in order, with a ranged request for a read far ahead of it.
// The whole file's SHA-256 and playability are checked by the fetch when
// the download is complete (the Stream reads on from it meanwhile) and its
// verdict is Wait's; then the Stream reads the cached file, or a failed
// fetch fails every later Read with its error.
type Stream struct {
	m      *Manager
	ctx    context.Context
	f      *flight
	record p2sp.Record

	mu   sync.Mutex
	r    torrent.Reader // the P2SP download; nil once reading the cached file
	rpos int64          // r's position
	part *os.File       // the HTTP-only download as it grows (f.g), or the complete P2SP one (f.whole); nil once reading the cached file
	file *os.File
	pos  int64
	size int64
	// index is the MP4 index, fetched first (its pieces checked against
	// their hashes with P2P info), from indexOff; nil when it comes with the
	// first bytes.
	index    []byte
	indexOff int64
	// ahead is a range of the HTTP-only file read far ahead of the
	// download, from aheadOff.
	ahead    []byte
	aheadOff int64
}

// aheadChunk is how much of the file one ranged request ahead of the
// HTTP-only download gets.
const aheadChunk = 256 << 10

// Open returns a Stream of id: the cached file at once, or the file as its
// Fetch downloads it (started here unless one is running; progress, when
// not nil, is its progress callback, as Fetch's). For an MP4 whose index
// (moov) follows its media data, Open gets the index first, so a player
// has it before the first sample. ctx bounds Open and every Read; the fetch
// itself runs to its end regardless (Wait), or until the Manager closes.
func (m *Manager) Open(ctx context.Context, id p2sp.FileID, progress func(Progress)) (*Stream, error) {
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
	s.f = m.startFetch(id, progress)
	select {
	case <-s.f.ready: // the download can be streamed
	case <-s.f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	switch {
	case s.f.t != nil:
		s.r = s.f.t.NewReader()
		s.r.SetContext(ctx)
		s.r.SetReadahead(StreamReadahead)
	case s.f.g != nil:
		part, err := os.Open(s.f.g.path)
		if err != nil { // the fetch has ended and removed it
			return s, s.waitCached(ctx)
		}
		s.part = part
	default: // no stream: the fetch is the only way
		return s, s.waitCached(ctx)
	}
	s.record, s.size = s.f.rec, s.f.rec.Size
	if isMP4(s.record) {
		if err := s.indexFirst(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// waitCached waits for the fetch and opens the cached file.
func (s *Stream) waitCached(ctx context.Context) error {
	select {
	case <-s.f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.f.err != nil {
		return s.f.err
	}
	return s.openCached()
}

// startFetch starts a fetch of id in the background (or joins the one
// running) and returns its flight.
func (m *Manager) startFetch(id p2sp.FileID, progress func(Progress)) *flight {
	f, busy, err := m.joinFlight(id)
	if err != nil {
		f = newFlight()
		f.err = err
		close(f.done)
		return f
	}
	if !busy {
		go m.fly(context.Background(), id, progress, f)
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

// Read reads from the downloading file (the MP4 index from its copy
// fetched first), or from the cache once the fetch has ended well. With
// P2P info, io.EOF comes with the last piece that passed its hash; on the
// HTTP-only path, where nothing is checked before the end, it waits for the
// fetch's verdict: a file that fails verification ends with the fetch's
// error instead.
func (s *Stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readLocked(p)
}

// ReadAt reads len(p) bytes from off (fewer only at the end of the file,
// with io.EOF), waiting for them to arrive: an io.ReaderAt for
// playback.SendRTPReader. It moves the Read position.
func (s *Stream) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 {
		return 0, errors.New("p2sp client: negative offset")
	}
	s.pos = off
	n := 0
	for n < len(p) {
		k, err := s.readLocked(p[n:])
		n += k
		if err != nil {
			return n, err
		}
		if k == 0 && s.pos >= s.size {
			return n, io.EOF
		}
	}
	return n, nil
}

// Size is the file's size in bytes.
func (s *Stream) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

func (s *Stream) readLocked(p []byte) (int, error) {
	if s.file == nil && s.fetchEnded() {
		if err := s.switchToFile(); err != nil {
			return 0, err
		}
	}
	if s.file != nil {
		return s.readFile(s.file, p)
	}
	if n := held(p, s.pos, s.index, s.indexOff) + held(p, s.pos, s.ahead, s.aheadOff); n > 0 {
		s.pos += int64(n)
		return n, nil
	}
	if s.part != nil {
		if s.f.g == nil { // the complete P2SP download, every piece checked
			return s.readFile(s.part, p)
		}
		return s.readGrowing(p)
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
	// The fetch drops its torrent when the download completes: read on
	// from the complete download while it is verified as a whole (a player
	// does not pause for that), then from the cache.
	select {
	case <-s.f.whole:
		part, err := os.Open(s.f.wholePath)
		if err != nil {
			return s.afterFetch(p)
		}
		s.closeDownload()
		s.part = part
		return s.readLocked(p)
	case <-s.f.done:
		return s.afterFetch(p)
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
}

// held copies into p what buf (the file's bytes from off) holds at pos.
func held(p []byte, pos int64, buf []byte, off int64) int {
	if i := pos - off; buf != nil && i >= 0 && i < int64(len(buf)) {
		return copy(p, buf[i:])
	}
	return 0
}

// readGrowing reads the HTTP-only download as it grows: what is written
// already, else it waits for more; a read far ahead of the download gets
// its own ranged request instead.
func (s *Stream) readGrowing(p []byte) (int, error) {
	if s.pos >= s.size {
		return s.afterFetch(p) // the end is the end of the verified file
	}
	for {
		have, grew := s.f.g.state()
		switch {
		case have > s.pos:
			n, err := s.part.ReadAt(p[:min(int64(len(p)), have-s.pos)], s.pos)
			s.pos += int64(n)
			if n > 0 {
				return n, nil
			}
			if !errors.Is(err, io.EOF) {
				return 0, err
			}
			// Truncated under us: the download restarted. Wait.
		case s.pos-have > StreamReadahead:
			return s.readAhead(p)
		}
		select {
		case <-grew:
		case <-s.f.done:
			return s.afterFetch(p)
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
	}
}

// readAhead gets the range at the read position with its own request.
func (s *Stream) readAhead(p []byte) (int, error) {
	b, err := s.m.getBytes(s.ctx, s.f.g.url, s.pos, min(aheadChunk, s.size-s.pos))
	if err != nil {
		return 0, fmt.Errorf("p2sp client: reading ahead of the download: %w", err)
	}
	s.ahead, s.aheadOff = b, s.pos
	n := copy(p, b)
	s.pos += int64(n)
	return n, nil
}

// afterFetch waits for the fetch's verdict and reads on from the cache.
func (s *Stream) afterFetch(p []byte) (int, error) {
	select {
	case <-s.f.done:
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
	if err := s.switchToFile(); err != nil {
		return 0, err
	}
	return s.readFile(s.file, p)
}

func (s *Stream) readFile(f *os.File, p []byte) (int, error) {
	n, err := f.ReadAt(p, s.pos)
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
	err := s.closeDownload()
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
	s.closeDownload()
	return s.openCached()
}

// closeDownload stops reading the download in progress.
func (s *Stream) closeDownload() error {
	var err error
	if s.r != nil {
		err = s.r.Close()
		s.r = nil
	}
	if s.part != nil {
		err = errors.Join(err, s.part.Close())
		s.part = nil
	}
	return err
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
	s.file, s.size, s.index, s.ahead = f, fi.Size(), nil, nil
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
// headers from the web server and, when the index lies beyond the first
// bytes (a recorder writes it last), fetches it first over HTTP: a player
// reads the index at once instead of after the whole download. With P2P
// info it fetches the pieces that hold the index, checks each against its
// hash and keeps them (the library's web seed streams a file in order); on
// the HTTP-only path the index is checked with the whole file when the
// fetch ends.
func (s *Stream) indexFirst(ctx context.Context) error {
	url := s.m.opts.Origin + "/files/" + s.record.Name
	if s.f.g != nil {
		url = s.f.g.url
	}
	off, n, err := s.findMoov(ctx, url)
	if err != nil || n == 0 {
		return err
	}
	if s.f.g != nil {
		if have, _ := s.f.g.state(); off+n <= have {
			return nil // downloaded already
		}
		b, err := s.m.getBytes(ctx, url, off, n)
		if err != nil {
			return fmt.Errorf("p2sp client: the MP4 index: %w", err)
		}
		s.index, s.indexOff = b, off
		return nil
	}
	info := s.f.t.Info()
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

// findMoov walks the MP4's top-level boxes at url and returns where its
// moov box is and its length (0: not found; the fetch's checks judge).
func (s *Stream) findMoov(ctx context.Context, url string) (off, n int64, err error) {
	for i := 0; off+8 <= s.size && i < maxBoxes; i++ {
		hdr, err := s.m.getBytes(ctx, url, off, min(16, s.size-off))
		if err != nil {
			return 0, 0, fmt.Errorf("p2sp client: the MP4 box at %d: %w", off, err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		switch {
		case n == 0: // to the end of the file
			n = s.size - off
		case n == 1 && len(hdr) == 16: // a 64-bit size follows
			n = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if n < 8 || n > s.size-off {
			return 0, 0, nil
		}
		if string(hdr[4:8]) == "moov" {
			return off, n, nil
		}
		off += n
	}
	return 0, 0, nil
}

// growingFile is the HTTP-only download's file as it is written, front to
// back: Streams read what is written and wait for the rest.
type growingFile struct {
	path, url string
	// size and mediaType are set once, before onStart.
	size      int64
	mediaType string
	onStart   func(*growingFile)
	startOnce sync.Once

	mu   sync.Mutex
	have int64         // [0, have) is written
	grew chan struct{} // closed when have changes
}

func newGrowingFile(path, url string, onStart func(*growingFile)) *growingFile {
	return &growingFile{path: path, url: url, onStart: onStart, grew: make(chan struct{})}
}

// start says the file's size and media type, once known; the first call
// makes the download streamable.
func (g *growingFile) start(size int64, mediaType string) {
	g.startOnce.Do(func() {
		g.size, g.mediaType = size, mediaType
		g.onStart(g)
	})
}

// wrote says that [0, have) is written.
func (g *growingFile) wrote(have int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.have = have
	close(g.grew)
	g.grew = make(chan struct{})
}

// state is how much is written and a channel closed when that changes.
func (g *growingFile) state() (int64, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.have, g.grew
}
