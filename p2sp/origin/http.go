package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mediastack/mediastack/p2sp"
)

// maxReport bounds a report's body.
const maxReport = 1 << 20

// WebHandler is the web server (210).
func (o *Origin) WebHandler() http.Handler {
	mux := http.NewServeMux()
	o.route(mux, "web", "GET /files/{name}", o.serveFile)
	o.route(mux, "web", "GET /p2p/{name}", o.serveP2P)
	o.route(mux, "web", "POST /reports", o.serveReport)
	o.route(mux, "web", "/", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, http.StatusNotFound, "no such path")
	})
	return mux
}

// InfoHandler is the file-info server (220).
func (o *Origin) InfoHandler() http.Handler {
	mux := http.NewServeMux()
	o.route(mux, "info", "GET /files/{name}", o.serveInfo)
	o.route(mux, "info", "POST /files/{id}/status", o.serveStatus)
	o.route(mux, "info", "GET /announce", o.tracker.ServeHTTP)
	o.route(mux, "info", "GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		n := len(o.files)
		o.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "files": n})
	})
	o.route(mux, "info", "/", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, http.StatusNotFound, "no such path")
	})
	return mux
}

// route registers h, counting its requests under server and pattern.
func (o *Origin) route(mux *http.ServeMux, server, pattern string, h http.HandlerFunc) {
	key := server + " " + pattern
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.stats.Requests[key]++
		if server == "web" {
			o.stats.WebRequests++
		} else {
			o.stats.InfoRequests++
		}
		o.mu.Unlock()
		h(w, r)
	})
}

// lookup resolves "{id}" or "{id}{ext}" (ext the file's own) to a file.
func (o *Origin) lookup(name string) (file, bool) {
	id, err := p2sp.ParseFileID(name[:min(len(name), 64)])
	if err != nil {
		return file{}, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.files[id]
	if f == nil || (len(name) > 64 && name[64:] != f.ext) {
		return file{}, false
	}
	return *f, true
}

func (o *Origin) serveFile(w http.ResponseWriter, r *http.Request) {
	f, ok := o.lookup(r.PathValue("name"))
	if !ok {
		jsonError(w, http.StatusNotFound, "no such file")
		return
	}
	fd, err := os.Open(f.path)
	if err != nil {
		o.log.Error("origin: serving", "id", f.rec.ID, "err", err)
		jsonError(w, http.StatusInternalServerError, "the file cannot be read")
		return
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "the file cannot be read")
		return
	}
	w.Header().Set("ETag", `"`+string(f.rec.ID)+`"`)
	w.Header().Set("Content-Type", f.rec.MediaType)
	cw := &countingWriter{ResponseWriter: w}
	var content io.ReadSeeker = fd
	if o.limiter != nil {
		content = limitedFile{r.Context(), fd, o.limiter}
	}
	http.ServeContent(cw, r, f.rec.Name, fi.ModTime(), content)
	o.mu.Lock()
	switch cw.status {
	case http.StatusOK:
		o.stats.BytesServed += cw.n
	case http.StatusPartialContent:
		o.stats.BytesServed += cw.n
		o.stats.Ranges++
	}
	o.mu.Unlock()
}

// infoName parses "{id}" or "{id}.torrent", answering 404 when it is
// neither.
func infoName(w http.ResponseWriter, r *http.Request) (id p2sp.FileID, torrent, ok bool) {
	name := r.PathValue("name")
	torrent = strings.HasSuffix(name, ".torrent")
	id, err := p2sp.ParseFileID(strings.TrimSuffix(name, ".torrent"))
	if err != nil {
		jsonError(w, http.StatusNotFound, err.Error())
		return "", false, false
	}
	return id, torrent, true
}

// serveP2P relays the file-info server's record or metainfo.
func (o *Origin) serveP2P(w http.ResponseWriter, r *http.Request) {
	id, torrent, ok := infoName(w, r)
	if !ok {
		return
	}
	if torrent {
		b, err := o.info.Torrent(r.Context(), id)
		if err != nil {
			infoError(w, err)
			return
		}
		writeTorrent(w, b)
		return
	}
	rec, err := o.info.Record(r.Context(), id)
	if err != nil {
		infoError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func infoError(w http.ResponseWriter, err error) {
	if errors.Is(err, errNotFound) {
		jsonError(w, http.StatusNotFound, "no P2P info for this file")
		return
	}
	jsonError(w, http.StatusBadGateway, "file-info server: "+err.Error())
}

func (o *Origin) serveReport(w http.ResponseWriter, r *http.Request) {
	var rep p2sp.Report
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReport))
	if err := dec.Decode(&rep); err != nil {
		jsonError(w, http.StatusBadRequest, "report: "+err.Error())
		return
	}
	if _, err := p2sp.ParseFileID(string(rep.ID)); err != nil {
		jsonError(w, http.StatusBadRequest, "report: "+err.Error())
		return
	}
	switch rep.Stage {
	case p2sp.StagePieces, p2sp.StageSHA256, p2sp.StagePlayable, p2sp.StageOrigin, p2sp.StageStalled, p2sp.StageStorage:
	default:
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("report: stage %q", rep.Stage))
		return
	}
	o.mu.Lock()
	o.stats.Reports++
	o.mu.Unlock()
	ans, err := o.judge(r.Context(), rep)
	if errors.Is(err, errNotFound) {
		jsonError(w, http.StatusNotFound, "no such file")
		return
	}
	if err != nil {
		jsonError(w, http.StatusBadGateway, err.Error())
		return
	}
	o.mu.Lock()
	o.reports = append(o.reports, LoggedReport{Time: time.Now(), Remote: r.RemoteAddr, Report: rep, Answer: ans})
	o.mu.Unlock()
	o.log.Info("origin: report", "id", rep.ID, "stage", rep.Stage, "bad_pieces", len(rep.BadPieces), "banned", rep.BannedPeers, "status", ans.Status, "from", r.RemoteAddr)
	writeJSON(w, http.StatusOK, ans)
}

// judge decides a report (the package doc says how) and records a damaged
// verdict at the file-info server.
func (o *Origin) judge(ctx context.Context, rep p2sp.Report) (p2sp.ReportAnswer, error) {
	rec, ok := o.Record(rep.ID)
	if !ok {
		return p2sp.ReportAnswer{}, errNotFound
	}
	status, notice, why := o.checkOwnCopy(ctx, rep.ID)
	if status == p2sp.StatusOK && rep.Stage == p2sp.StagePlayable {
		// The client verified the bytes against the id: they are the
		// origin's, and the origin cannot rule out that they do not play.
		status, notice = p2sp.StatusDamaged, NoticeUnplayable
	}
	if status == p2sp.StatusOK && rec.Status == p2sp.StatusDamaged {
		return p2sp.ReportAnswer{Status: rec.Status, Notice: rec.Notice}, nil
	}
	if status == p2sp.StatusDamaged {
		o.log.Warn("origin: file damaged", "id", rep.ID, "why", why, "stage", rep.Stage)
		if err := o.info.SetStatus(ctx, rep.ID, status, notice); err != nil && !errors.Is(err, errNotFound) {
			return p2sp.ReportAnswer{}, err
		}
		if _, err := o.setStatus(rep.ID, status, notice); err != nil {
			return p2sp.ReportAnswer{}, err
		}
		return p2sp.ReportAnswer{Status: status, Notice: notice}, nil
	}
	switch rep.Stage {
	case p2sp.StageStorage:
		notice = NoticeStorage
	case p2sp.StageOrigin:
		notice = NoticeOriginIntact
	default:
		notice = NoticeBadPeer
	}
	return p2sp.ReportAnswer{Status: p2sp.StatusOK, Notice: notice}, nil
}

func (o *Origin) serveInfo(w http.ResponseWriter, r *http.Request) {
	id, torrent, ok := infoName(w, r)
	if !ok {
		return
	}
	o.mu.Lock()
	f := o.files[id]
	var rec p2sp.Record
	var b []byte
	if f != nil {
		rec, b = f.rec, f.torrent
	}
	o.mu.Unlock()
	if b == nil {
		jsonError(w, http.StatusNotFound, "no P2P info for this file")
		return
	}
	if torrent {
		writeTorrent(w, b)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// statusUpdate is the body of POST /files/{id}/status.
type statusUpdate struct {
	Status p2sp.Status `json:"status"`
	Notice string      `json:"notice,omitempty"`
}

func (o *Origin) serveStatus(w http.ResponseWriter, r *http.Request) {
	id, err := p2sp.ParseFileID(r.PathValue("id"))
	if err != nil {
		jsonError(w, http.StatusNotFound, err.Error())
		return
	}
	var u statusUpdate
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReport)).Decode(&u); err != nil {
		jsonError(w, http.StatusBadRequest, "status: "+err.Error())
		return
	}
	if u.Status != p2sp.StatusOK && u.Status != p2sp.StatusDamaged {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("status %q: want ok or damaged", u.Status))
		return
	}
	rec, err := o.setStatus(id, u.Status, u.Notice)
	if err != nil {
		jsonError(w, http.StatusNotFound, "no such file")
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func writeTorrent(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// countingWriter counts the body bytes and the status of an answer.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps the server's sendfile path for file bodies.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

// infoBackend is what the web server asks of the file-info server.
type infoBackend interface {
	Record(ctx context.Context, id p2sp.FileID) (p2sp.Record, error)
	Torrent(ctx context.Context, id p2sp.FileID) ([]byte, error)
	SetStatus(ctx context.Context, id p2sp.FileID, status p2sp.Status, notice string) error
}

// localInfo is the file-info server in the same process.
type localInfo struct{ o *Origin }

func (l localInfo) Record(_ context.Context, id p2sp.FileID) (p2sp.Record, error) {
	rec, ok := l.o.Record(id)
	if !ok || rec.InfoHash == "" {
		return p2sp.Record{}, errNotFound
	}
	return rec, nil
}

func (l localInfo) Torrent(_ context.Context, id p2sp.FileID) ([]byte, error) {
	if b := l.o.Torrent(id); b != nil {
		return b, nil
	}
	return nil, errNotFound
}

// SetStatus: in process, judge records the status itself.
func (l localInfo) SetStatus(context.Context, p2sp.FileID, p2sp.Status, string) error { return nil }

// remoteInfo is the file-info server over HTTP.
type remoteInfo struct {
	base   string
	client *http.Client
}

func (ri *remoteInfo) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ri.base+path, nil)
	if err != nil {
		return nil, err
	}
	return ri.do(req)
}

func (ri *remoteInfo) do(req *http.Request) ([]byte, error) {
	resp, err := ri.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return b, nil
	case http.StatusNotFound:
		return nil, errNotFound
	}
	return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
}

func (ri *remoteInfo) Record(ctx context.Context, id p2sp.FileID) (p2sp.Record, error) {
	b, err := ri.get(ctx, "/files/"+string(id))
	if err != nil {
		return p2sp.Record{}, err
	}
	var rec p2sp.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("record of %s: %w", id, err)
	}
	return rec, nil
}

func (ri *remoteInfo) Torrent(ctx context.Context, id p2sp.FileID) ([]byte, error) {
	return ri.get(ctx, "/files/"+string(id)+".torrent")
}

func (ri *remoteInfo) SetStatus(ctx context.Context, id p2sp.FileID, status p2sp.Status, notice string) error {
	body, _ := json.Marshal(statusUpdate{Status: status, Notice: notice})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ri.base+"/files/"+string(id)+"/status", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = ri.do(req)
	return err
}
