package playback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/mediastack/mediastack/p2sp/media"
)

// Source is a file being downloaded, as a player reads it: ReadAt waits
// for all the bytes asked for, Read for some (what has arrived at its
// position), and both fail when the download does. A *client.Stream is
// one.
type Source interface {
	io.ReaderAt
	io.ReadSeeker
	Size() int64
}

// PlayStream plays src while it downloads: as RTP (WAV and Ogg Opus
// packetized here, through o.Sender; anything else by ffmpeg, which reads
// src from a loopback HTTP server, seeking as it needs: an MP4's index
// first), or on the command's stdin, front to back. A command that needs a
// path (NeedsPath) cannot: play the verified file with Play instead.
func (t Target) PlayStream(ctx context.Context, src Source, o RTPOptions) (Stats, error) {
	size := src.Size()
	if !t.RTP.IsValid() {
		if t.NeedsPath() {
			return Stats{}, errors.New("playback: a player given the file's path (\"{}\") plays it once verified, not while it downloads")
		}
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return Stats{}, fmt.Errorf("playback: %w", err)
		}
		return Stats{}, t.run(ctx, "", src)
	}
	o.Dest = t.RTP
	o, err := o.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	var head [12]byte
	if _, err := src.ReadAt(head[:min(size, int64(len(head)))], 0); err != nil && !errors.Is(err, io.EOF) {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	switch media.Sniff(head[:]) {
	case media.TypeWAV, media.TypeOgg:
		return sendReader(ctx, src, size, head[:], o)
	}
	return sendFFmpegStream(ctx, src, o)
}

// sendFFmpegStream serves src on a loopback HTTP server (with ranges, so
// ffmpeg seeks as in a file) and hands its URL to ffmpeg.
func sendFFmpegStream(ctx context.Context, src Source, o RTPOptions) (Stats, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Stats{}, fmt.Errorf("playback: a loopback server for ffmpeg: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "media", time.Time{}, io.NewSectionReader(src, 0, src.Size()))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l)
	}()
	defer func() {
		srv.Close()
		<-served
	}()
	return sendFFmpeg(ctx, "http://"+l.Addr().String()+"/media", o)
}

// PlayWhileVerifying plays src with t (PlayStream) while verify waits for
// the download's verdict. A failed verification stops the playback at
// once: PlayWhileVerifying returns verify's error when the playback has
// ended. Otherwise it returns when both have ended, with the playback's
// stats and error; verify may report its verdict (a done line) before the
// playback ends.
func (t Target) PlayWhileVerifying(ctx context.Context, src Source, o RTPOptions, verify func(context.Context) error) (Stats, error) {
	playCtx, stop := context.WithCancel(ctx)
	defer stop()
	type played struct {
		st  Stats
		err error
	}
	done := make(chan played, 1)
	go func() {
		st, err := t.PlayStream(playCtx, src, o)
		done <- played{st, err}
	}()
	if err := verify(ctx); err != nil {
		stop()
		p := <-done
		return p.st, err
	}
	p := <-done
	return p.st, p.err
}
