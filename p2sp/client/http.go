package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/mediastack/mediastack/p2sp"
)

// httpRetries is how many times in a row the HTTP-only download may fail
// without a byte of progress before Fetch gives up.
const httpRetries = 4

// fetchHTTP is claim 9's path: no P2P info, so a plain HTTP GET of
// /files/{id} from the web server, resumed with a Range request after a
// broken connection; no BitTorrent traffic at all. The file grows in order,
// so Streams read it as it arrives (f's growingFile, ready once the size is
// known).
func (m *Manager) fetchHTTP(ctx context.Context, id p2sp.FileID, rec p2sp.Record, progress func(Progress), fl *flight) (download, error) {
	name := rec.Name
	if name == "" {
		name = string(id)
	}
	url := m.opts.Origin + "/files/" + name
	path := filepath.Join(m.tmpDir(id), string(id)+partialSuffix)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, cacheFilePerm)
	if err != nil {
		return download{}, m.fail(ctx, p2sp.Report{ID: id, Stage: p2sp.StageStorage, Detail: err.Error()})
	}
	defer f.Close()
	pr := &progressMeter{method: MethodHTTP, size: rec.Size, report: progress}
	g := newGrowingFile(path, url, func(g *growingFile) {
		streamed := rec
		if streamed.Name == "" {
			streamed.Name, streamed.MediaType = string(id)+extensionFor(g.mediaType), g.mediaType
		}
		streamed.Size = g.size
		fl.setReady(nil, g, streamed)
	})
	var got int64
	var mediaType string
	for failures := 0; ; {
		end, size, ctype, err := m.getRange(ctx, url, f, got, pr, g)
		progressed := end > got
		got = end
		if mediaType == "" {
			mediaType = ctype
		}
		if size >= 0 {
			pr.size = size
		}
		if err == nil {
			break
		}
		var werr *writeError
		switch {
		case ctx.Err() != nil:
			return download{}, ctx.Err()
		case errors.As(err, &werr):
			return download{}, m.fail(ctx, p2sp.Report{ID: id, Stage: p2sp.StageStorage, Detail: werr.Error()})
		case errors.Is(err, errNotFound):
			return download{}, fmt.Errorf("p2sp client: %s: not on the web server", id)
		}
		if progressed {
			failures = 0
		}
		if failures++; failures > httpRetries {
			return download{}, fmt.Errorf("p2sp client: %s over HTTP: %w", id, err)
		}
		m.log.Info("p2sp client: HTTP download interrupted, resuming", "id", id, "at", got, "err", err)
		select {
		case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
		case <-ctx.Done():
			return download{}, ctx.Err()
		}
	}
	if err := f.Close(); err != nil {
		return download{}, m.fail(ctx, p2sp.Report{ID: id, Stage: p2sp.StageStorage, Detail: err.Error()})
	}
	pr.finish(got)
	if rec.Name == "" {
		rec.Name = string(id) + extensionFor(mediaType)
		rec.MediaType, rec.Size, rec.Status = mediaType, got, p2sp.StatusOK
	}
	return download{path: path, res: Result{
		Record:  rec,
		Method:  MethodHTTP,
		Sources: map[string]int64{WebSource: got},
	}}, nil
}

// writeError is a failure to write the download: the local disk's fault.
type writeError struct{ err error }

func (e *writeError) Error() string { return "writing the download: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// getRange GETs url from offset `from` into f at that offset (from 0 when
// the server ignores the range), telling g how far f is written. It
// returns the offset reached, the file's size when the answer told it
// (else -1), the media type, and nil when the file is complete.
func (m *Manager) getRange(ctx context.Context, url string, f *os.File, from int64, pr *progressMeter, g *growingFile) (int64, int64, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return from, -1, "", err
	}
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return from, -1, "", err
	}
	defer resp.Body.Close()
	size := int64(-1)
	switch resp.StatusCode {
	case http.StatusOK: // the whole file (a server that ignores ranges: again)
		if from > 0 {
			g.wrote(0) // before the bytes go: no Stream reads past the new end
			if err := f.Truncate(0); err != nil {
				return from, -1, "", &writeError{err}
			}
			pr.restart()
			from = 0
		}
		size = resp.ContentLength
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != from {
			return from, -1, "", fmt.Errorf("GET %s: Content-Range %q for bytes=%d-", url, resp.Header.Get("Content-Range"), from)
		}
		size = total
	case http.StatusRequestedRangeNotSatisfiable:
		// Everything was had already (the connection broke after the last byte).
		return from, -1, "", nil
	case http.StatusNotFound:
		return from, -1, "", errNotFound
	default:
		return from, -1, "", fmt.Errorf("GET %s: %s%s", url, resp.Status, errorBody(resp.Body))
	}
	ctype, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if size >= 0 {
		g.start(size, ctype)
	}
	// A stalled body ends this attempt; the caller resumes.
	idle := time.AfterFunc(m.opts.StallTimeout, cancel)
	defer idle.Stop()
	off := from
	buf := make([]byte, 32<<10)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			idle.Reset(m.opts.StallTimeout)
			if err := waitN(ctx, m.down, k); err != nil {
				return off, size, ctype, err
			}
			if _, err := f.WriteAt(buf[:k], off); err != nil {
				return off, size, ctype, &writeError{err}
			}
			off += int64(k)
			g.wrote(off)
			pr.add(int64(k), WebSource)
		}
		if rerr == io.EOF {
			if size >= 0 && off != size {
				return off, size, ctype, io.ErrUnexpectedEOF
			}
			return off, size, ctype, nil
		}
		if rerr != nil {
			return off, size, ctype, rerr
		}
	}
}

// waitN takes n bytes' worth of tokens from l (nil: no cap), in pieces no
// larger than its burst.
func waitN(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	first, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

// extensionFor names a cached file's extension from its media type, for a
// file without a record (HTTP only).
func extensionFor(mediaType string) string {
	switch mediaType {
	case "audio/ogg", "application/ogg":
		return ".ogg"
	case "video/ogg":
		return ".ogv"
	case "audio/opus":
		return ".opus"
	case "video/mp4":
		return ".mp4"
	case "audio/mp4":
		return ".m4a"
	case "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave":
		return ".wav"
	case "audio/mpeg":
		return ".mp3"
	case "video/webm":
		return ".webm"
	case "audio/webm":
		return ".weba"
	}
	if exts, _ := mime.ExtensionsByType(mediaType); len(exts) > 0 {
		return exts[0]
	}
	return ""
}

// progressMeter turns byte counts into Progress calls, at most every
// progressEvery, with a rate over the last second or so.
type progressMeter struct {
	method    Method
	size      int64
	report    func(Progress)
	done      int64
	sources   map[string]int64
	badPieces int

	last     time.Time
	rateFrom time.Time
	rateDone int64
	rate     float64
}

const progressEvery = 250 * time.Millisecond

func (p *progressMeter) add(n int64, source string) {
	p.done += n
	if p.sources == nil {
		p.sources = map[string]int64{}
	}
	p.sources[source] += n
	p.tick(false)
}

func (p *progressMeter) tick(force bool) {
	now := time.Now()
	if p.rateFrom.IsZero() {
		p.rateFrom, p.last = now, now
	}
	if el := now.Sub(p.rateFrom); el >= time.Second {
		p.rate = float64(p.done-p.rateDone) / el.Seconds()
		p.rateFrom, p.rateDone = now, p.done
	}
	if !force && now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	p.report(Progress{Method: p.method, Done: p.done, Size: p.size, Rate: p.rate, Sources: maps.Clone(p.sources), BadPieces: p.badPieces})
}

// restart forgets the bytes counted so far: the download starts over.
func (p *progressMeter) restart() {
	p.done, p.rateDone, p.sources = 0, 0, nil
}

func (p *progressMeter) finish(done int64) {
	p.done = done
	p.tick(true)
}

// getBytes GETs n bytes of url from off with a Range request, within the
// download cap.
func (m *Manager) getBytes(ctx context.Context, url string, off, n int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if start, _, ok := parseContentRange(resp.Header.Get("Content-Range")); resp.StatusCode != http.StatusPartialContent || !ok || start != off {
		return nil, fmt.Errorf("GET %s bytes=%d-: %s%s", url, off, resp.Status, errorBody(resp.Body))
	}
	if err := waitN(ctx, m.down, int(n)); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return nil, fmt.Errorf("GET %s bytes=%d-: %w", url, off, err)
	}
	return b, nil
}
