package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/media"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

// builtinPlayable is media.CheckPlayable without ffprobe: mediatest's MP4
// has the structure of one, not decodable samples.
func builtinPlayable(ctx context.Context, path string) error { return media.CheckPlayable(ctx, path) }

// streamed is a file published on a test origin and opened on a new
// Manager.
type streamed struct {
	o   *testOrigin
	m   *Manager
	id  p2sp.FileID
	s   *Stream
	ctx context.Context
}

// openStreamed publishes data (p2p: with P2P info) on an origin whose web
// server sends webRate bytes/s (corrupt: a copy changed after publishing),
// and opens it on a new Manager (edit, when not nil, edits its Options).
func openStreamed(t *testing.T, webRate int64, data []byte, ext string, p2p, corrupt bool, edit func(*Options)) streamed {
	t.Helper()
	o := newTestOrigin(t, webRate)
	id, _ := o.publish(data, ext, p2p)
	if corrupt {
		o.corrupt(id)
	}
	m := newTestManager(t, clientAddr, o, edit)
	ctx := testContext(t)
	s, err := m.Open(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return streamed{o, m, id, s, ctx}
}

func builtinPlayableOption(o *Options) { o.CheckPlayable = builtinPlayable }

// A player starts on an MP4 whose index (moov) is at the end while it
// downloads: Open returns with the index's pieces had and the rest still
// coming; reading goes on across the fetch's end into the cached file.
func TestStreamMP4IndexFirst(t *testing.T) {
	data := mediatest.MP4("vide", 300*time.Second, 30000, true) // 3 MB, moov last
	st := openStreamed(t, 512<<10, data, ".mp4", true, false, builtinPlayableOption)
	m, id, s, ctx := st.m, st.id, st.s, st.ctx
	size := int64(len(data))
	if got := s.f.t.BytesCompleted(); got >= size {
		t.Errorf("after Open the whole file (%d bytes) was there: nothing to stream", got)
	}
	if s.index == nil {
		t.Error("Open did not fetch the MP4 index first")
	}
	// The player reads the index first: it is there, without waiting for
	// the download to reach the end.
	moovAt := int64(bytes.LastIndex(data, []byte("moov")) - 4)
	if _, err := s.Seek(moovAt, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	moov, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(moov, data[moovAt:]) {
		t.Fatalf("read the index: %d bytes, %v; want the %d published", len(moov), err, size-moovAt)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("reading the index took %v", el)
	}
	if got := s.f.t.BytesCompleted(); got >= size {
		t.Errorf("after reading the index the whole file (%d bytes) was there: it did not come first", got)
	}
	if _, err := s.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(s, head); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, data[:len(head)]) {
		t.Fatal("the stream's first MiB differs")
	}
	rest, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, data[len(head):]) {
		t.Fatalf("the stream's remaining %d bytes differ from the %d published", len(rest), len(data)-len(head))
	}
	res, err := s.Wait(ctx)
	if err != nil || res.Method != MethodP2SP {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
	assertCached(t, m, id, data)

	// Open of a cached file: the file itself, seekable.
	c, err := m.Open(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Seek(-8, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(tail, data[len(data)-8:]) {
		t.Errorf("cached stream tail %x, %v; want %x", tail, err, data[len(data)-8:])
	}
}

// Open of a file without P2P info streams its HTTP download as it grows:
// the first bytes are read long before the download ends, and reading goes
// on across the fetch's end into the cached file.
func TestStreamHTTPOnly(t *testing.T) {
	data := testMedia(512 << 10)
	st := openStreamed(t, 256<<10, data, ".wav", false, false, nil) // 2 s for the file
	m, id, s, ctx := st.m, st.id, st.s, st.ctx
	if s.Size() != int64(len(data)) {
		t.Errorf("Size() = %d, want %d", s.Size(), len(data))
	}
	head := make([]byte, 44)
	if _, err := s.ReadAt(head, 0); err != nil || !bytes.Equal(head, data[:44]) {
		t.Fatalf("ReadAt the header: %x, %v", head, err)
	}
	if s.fetchEnded() {
		t.Fatal("the fetch had ended when the header was read: nothing was streamed")
	}
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, data[44:]) {
		t.Fatalf("read %d bytes, %v; want the %d published", len(got), err, len(data)-44)
	}
	if res, err := s.Wait(ctx); err != nil || res.Method != MethodHTTP {
		t.Errorf("Wait = %+v, %v", res, err)
	}
	assertCached(t, m, id, data)
}

// A read far ahead of the HTTP-only download gets its own ranged request;
// the download goes on in order.
func TestStreamHTTPReadAhead(t *testing.T) {
	data := testMedia(StreamReadahead + 2<<20)
	st := openStreamed(t, 2<<20, data, ".wav", false, false, nil)
	m, id, s, ctx := st.m, st.id, st.s, st.ctx
	at := int64(len(data)) - 100<<10
	tail := make([]byte, 100<<10)
	if _, err := s.ReadAt(tail, at); err != nil || !bytes.Equal(tail, data[at:]) {
		t.Fatalf("ReadAt %d: %v, or the bytes differ", at, err)
	}
	if s.fetchEnded() || s.ahead == nil {
		t.Errorf("the tail was not read ahead of the download (fetch ended %v)", s.fetchEnded())
	}
	if res, err := s.Wait(ctx); err != nil || res.Method != MethodHTTP {
		t.Errorf("Wait = %+v, %v", res, err)
	}
	assertCached(t, m, id, data)
}

// An MP4 without P2P info whose index is at the end: Open gets the index
// first with a ranged request, before the download reaches it.
func TestStreamHTTPOnlyMP4IndexFirst(t *testing.T) {
	data := mediatest.MP4("soun", 300*time.Second, 30000, true) // 3 MB, moov last
	st := openStreamed(t, 1<<20, data, ".mp4", false, false, builtinPlayableOption)
	s, ctx := st.s, st.ctx
	moovAt := int64(bytes.LastIndex(data, []byte("moov")) - 4)
	if s.index == nil || s.indexOff != moovAt {
		t.Fatalf("Open did not fetch the MP4 index first (at %d, have %d bytes from %d)", moovAt, len(s.index), s.indexOff)
	}
	moov := make([]byte, int64(len(data))-moovAt)
	if _, err := s.ReadAt(moov, moovAt); err != nil || !bytes.Equal(moov, data[moovAt:]) {
		t.Fatalf("read the index: %v, or its bytes differ", err)
	}
	if s.fetchEnded() {
		t.Error("the download had ended when the index was read: it did not come first")
	}
	if _, err := s.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want the %d published", len(got), err, len(data))
	}
	if res, err := s.Wait(ctx); err != nil || res.Method != MethodHTTP {
		t.Errorf("Wait = %+v, %v", res, err)
	}
}

// A bad origin while streaming over HTTP only: the bytes flow, the fetch
// fails its SHA-256 at the end, and the Stream's next read fails with the
// report; nothing is cached.
func TestStreamHTTPOnlyBadOrigin(t *testing.T) {
	st := openStreamed(t, 1<<20, testMedia(1<<20), ".wav", false, true, nil)
	o, m, id, s, ctx := st.o, st.m, st.id, st.s, st.ctx
	_, err := io.ReadAll(s)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Report.Stage != p2sp.StageSHA256 {
		t.Fatalf("reading the stream: %v, want the fetch's *FetchError at stage sha256", err)
	}
	if _, werr := s.Wait(ctx); !errors.As(werr, &fe) {
		t.Errorf("Wait: %v, want a *FetchError", werr)
	}
	if n := len(o.gotReports()); n != 1 {
		t.Errorf("the origin got %d reports, want 1", n)
	}
	assertNotCached(t, m, id)
}

// Once a P2SP download is complete, a Stream reads on from it while the
// fetch checks the whole file (here held up in its playability check): a
// player does not pause for the verification.
func TestStreamWhileVerifying(t *testing.T) {
	checking, release := make(chan struct{}), make(chan struct{})
	hold := func(o *Options) {
		o.CheckPlayable = func(ctx context.Context, path string) error {
			close(checking)
			<-release
			return builtinPlayable(ctx, path)
		}
	}
	data := testMedia(1 << 20)
	st := openStreamed(t, 4<<20, data, ".wav", true, false, hold)
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(st.s, head); err != nil {
		t.Fatal(err)
	}
	select {
	case <-checking:
	case <-st.ctx.Done():
		t.Fatal("the fetch never checked the file")
	}
	rest, err := io.ReadAll(st.s) // with the check held up
	if err != nil || !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("read %d bytes while the file was checked, %v; want the %d published", len(head)+len(rest), err, len(data))
	}
	if st.s.fetchEnded() {
		t.Fatal("the fetch ended while its check was held up")
	}
	close(release)
	if res, err := st.s.Wait(st.ctx); err != nil || res.Method != MethodP2SP {
		t.Errorf("Wait = %+v, %v", res, err)
	}
	assertCached(t, st.m, st.id, data)
}
