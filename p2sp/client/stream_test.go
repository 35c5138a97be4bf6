package client

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/mediastack/mediastack/p2sp/media"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

// builtinPlayable is media.CheckPlayable without ffprobe: mediatest's MP4
// has the structure of one, not decodable samples.
func builtinPlayable(ctx context.Context, path string) error { return media.CheckPlayable(ctx, path) }

// A player starts on an MP4 whose index (moov) is at the end while it
// downloads: Open returns with the index's pieces had and the rest still
// coming; reading goes on across the fetch's end into the cached file.
func TestStreamMP4IndexFirst(t *testing.T) {
	o := newTestOrigin(t, 512<<10)
	data := mediatest.MP4("vide", 300*time.Second, 30000, true) // 3 MB, moov last
	id, _ := o.publish(data, ".mp4", true)
	m := newTestManager(t, clientAddr, o, func(o *Options) { o.CheckPlayable = builtinPlayable })
	ctx := testContext(t)
	s, err := m.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
	c, err := m.Open(ctx, id)
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

// Open of a file without P2P info waits for its HTTP download.
func TestStreamHTTPOnly(t *testing.T) {
	o := newTestOrigin(t, 0)
	data := testMedia(256 << 10)
	id, _ := o.publish(data, ".wav", false)
	m := newTestManager(t, clientAddr, o, nil)
	ctx := testContext(t)
	s, err := m.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want the %d published", len(got), err, len(data))
	}
	if res, err := s.Wait(ctx); err != nil || res.Method != MethodHTTP {
		t.Errorf("Wait = %+v, %v", res, err)
	}
}
