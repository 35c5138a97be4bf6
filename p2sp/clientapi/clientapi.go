// Package clientapi puts a P2SP client (a client.Manager) behind an HTTP+JSON
// control API, so that the app beside a sidecar (`mediastack serve
// --p2sp-origin`) can have the sidecar fetch media files on the stack and the
// link its relays use:
//
//	POST /v1/p2sp/fetches        {"id":"<file id>"} -> 202, the fetch (a fetch of that id
//	                             already running: 200, that one)
//	GET  /v1/p2sp/fetches        -> 200, {"fetches":[...]}, oldest first
//	GET  /v1/p2sp/fetches/{id}   -> 200, the latest fetch of id
//
// A fetch is {"id", "state": running|done|failed, "bytes", "total", "rate",
// "sources", "method", "path", "error", "status", "notice", ...}: on a failed
// verification, status and notice are the origin's answer to the client's
// report (what the user is shown). Errors are {"error": "..."} with 400,
// 404, 405 (with Allow), 413 or 503, as relay's control API answers them.
//
// Plug it in beside relay's handler on one server (controlhttp gives both
// the same token):
//
//	api := clientapi.New(manager, log)
//	defer api.Close() // ends the fetches, before manager.Close
//	mux.Handle("/v1/p2sp/", api.Handler())
package clientapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mediastack/mediastack/internal/controlhttp"
	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
)

// State is where a fetch is.
type State string

const (
	Running State = "running"
	Done    State = "done"   // verified and in the cache: Path is the file
	Failed  State = "failed" // Error says why; Status and Notice are the origin's answer to the report
)

// FetchJSON is a fetch as the API shows it.
type FetchJSON struct {
	ID    p2sp.FileID `json:"id"`
	State State       `json:"state"`
	// Bytes are the bytes received (and verified so far); Total the file's
	// size, 0 while unknown.
	Bytes int64 `json:"bytes"`
	Total int64 `json:"total"`
	// Rate is bytes per second: over the last second or so while running,
	// the average over the whole fetch once it is done.
	Rate float64 `json:"rate"`
	// Sources are the useful bytes by source: "web" or a peer's address.
	Sources   map[string]int64 `json:"sources"`
	Method    client.Method    `json:"method,omitempty"`
	BadPieces int              `json:"bad_pieces,omitempty"`
	Path      string           `json:"path,omitempty"`
	// Fallback says why the fetch went HTTP only, when it did.
	Fallback string `json:"fallback,omitempty"`
	Error    string `json:"error,omitempty"`
	// Status and Notice are the origin's answer to a failure report.
	Status    p2sp.Status `json:"status,omitempty"`
	Notice    string      `json:"notice,omitempty"`
	Started   time.Time   `json:"started"`
	ElapsedNS int64       `json:"elapsed_ns"`
}

// ListJSON is the body of GET /v1/p2sp/fetches.
type ListJSON struct {
	Fetches []FetchJSON `json:"fetches"`
}

// CreateRequest is the body of POST /v1/p2sp/fetches.
type CreateRequest struct {
	ID string `json:"id"`
}

// ErrorJSON is the body of every error response.
type ErrorJSON struct {
	Error string `json:"error"`
}

// ErrClosed is Start's error once the API is closed.
var ErrClosed = errors.New("p2sp fetches: closed")

// fetcher is what the API needs of a client.Manager.
type fetcher interface {
	Fetch(ctx context.Context, id p2sp.FileID, progress func(client.Progress)) (client.Result, error)
}

// API runs fetches on a Manager and shows them.
type API struct {
	m   fetcher
	log *slog.Logger

	life    context.Context
	endLife context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	fetches map[p2sp.FileID]*fetch // the latest fetch of each id
	order   []p2sp.FileID          // ids in the order first fetched
}

// fetch is one fetch; its fields are guarded by API.mu.
type fetch struct {
	j FetchJSON
}

// New returns the API over m; log (nil: slog.Default()) gets a line when a
// fetch starts and ends. Close it before m.
func New(m *client.Manager, log *slog.Logger) *API {
	return newAPI(m, log)
}

func newAPI(m fetcher, log *slog.Logger) *API {
	if log == nil {
		log = slog.Default()
	}
	a := &API{m: m, log: log, fetches: map[p2sp.FileID]*fetch{}}
	a.life, a.endLife = context.WithCancel(context.Background())
	return a
}

// Close ends every running fetch (they fail with "canceled") and waits for
// them.
func (a *API) Close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.endLife()
	a.wg.Wait()
}

// Start starts a fetch of id, or returns the one running (started false).
func (a *API) Start(id p2sp.FileID) (j FetchJSON, started bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return FetchJSON{}, false, ErrClosed
	}
	if f, ok := a.fetches[id]; ok && f.j.State == Running {
		return f.j.clone(), false, nil
	}
	if _, ok := a.fetches[id]; !ok {
		a.order = append(a.order, id)
	}
	f := &fetch{j: FetchJSON{ID: id, State: Running, Started: time.Now().UTC(), Sources: map[string]int64{}}}
	a.fetches[id] = f
	a.wg.Add(1)
	go a.run(f)
	a.log.Info("p2sp fetch started", "id", string(id))
	return f.j.clone(), true, nil
}

func (a *API) run(f *fetch) {
	defer a.wg.Done()
	start := time.Now()
	res, err := a.m.Fetch(a.life, f.j.ID, func(p client.Progress) {
		a.mu.Lock()
		defer a.mu.Unlock()
		f.j.Method, f.j.Bytes, f.j.Total, f.j.Rate, f.j.BadPieces = p.Method, p.Done, p.Size, p.Rate, p.BadPieces
		f.j.Sources = copySources(p.Sources)
		f.j.ElapsedNS = int64(time.Since(start))
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	j := &f.j
	j.ElapsedNS = int64(time.Since(start))
	if err != nil {
		j.State, j.Rate, j.Error = Failed, 0, err.Error()
		var fe *client.FetchError
		if errors.As(err, &fe) {
			j.Status, j.Notice = fe.Answer.Status, fe.Answer.Notice
		}
		a.log.Warn("p2sp fetch failed", "id", string(j.ID), "err", err)
		return
	}
	j.State, j.Method, j.Path, j.Fallback, j.BadPieces = Done, res.Method, res.Path, res.Fallback, res.BadPieces
	if res.Sources != nil {
		j.Sources = copySources(res.Sources)
	}
	if res.Reported != nil {
		j.Status, j.Notice = res.Reported.Status, res.Reported.Notice
	}
	var size int64
	for _, n := range j.Sources {
		size += n
	}
	if res.Method == client.MethodCache || size == 0 {
		size = res.Record.Size
	}
	j.Bytes, j.Total = max(j.Bytes, size), max(j.Total, res.Record.Size, size)
	j.Rate = 0
	if res.Method != client.MethodCache && res.Elapsed > 0 {
		j.Rate = float64(j.Bytes) / res.Elapsed.Seconds()
	}
	a.log.Info("p2sp fetch done", "id", string(j.ID), "method", string(res.Method), "bytes", j.Bytes, "elapsed", res.Elapsed.String(), "path", res.Path)
}

// Get returns the latest fetch of id.
func (a *API) Get(id p2sp.FileID) (FetchJSON, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.fetches[id]
	if !ok {
		return FetchJSON{}, false
	}
	return f.j.clone(), true
}

// List returns the latest fetch of every id, in the order the ids were
// first fetched.
func (a *API) List() []FetchJSON {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]FetchJSON, 0, len(a.order))
	for _, id := range a.order {
		out = append(out, a.fetches[id].j.clone())
	}
	return out
}

func (j FetchJSON) clone() FetchJSON {
	j.Sources = copySources(j.Sources)
	return j
}

func copySources(s map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

// maxRequestBody bounds a request body; a fetch request is ~80 bytes.
const maxRequestBody = 64 << 10

// Handler returns the API (see the package doc), every path under
// /v1/p2sp/.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/p2sp/fetches", a.handleCreate)
	mux.HandleFunc("GET /v1/p2sp/fetches", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ListJSON{Fetches: a.List()})
	})
	mux.HandleFunc("GET /v1/p2sp/fetches/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := p2sp.ParseFileID(r.PathValue("id"))
		if err != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no fetch %q: %v", r.PathValue("id"), err))
			return
		}
		j, ok := a.Get(id)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no fetch of %s", id))
			return
		}
		writeJSON(w, http.StatusOK, j)
	})
	mux.HandleFunc("/v1/p2sp/fetches", methodNotAllowed("GET, POST"))
	mux.HandleFunc("/v1/p2sp/fetches/{id}", methodNotAllowed("GET"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q: the P2SP API is under /v1/p2sp/fetches", r.URL.Path))
	})
	return mux
}

func (a *API) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := controlhttp.ReadBody(w, r, maxRequestBody)
	if !ok {
		return
	}
	var req CreateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		if err == nil {
			err = errors.New("data after the JSON object")
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("request body is not a fetch: %v (want {\"id\":\"<file id>\"})", err))
		return
	}
	id, err := p2sp.ParseFileID(req.ID)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("\"id\": %v", err))
		return
	}
	j, started, err := a.Start(id)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Location", "/v1/p2sp/fetches/"+string(id))
	code := http.StatusOK
	if started {
		code = http.StatusAccepted
	}
	writeJSON(w, code, j)
}

// The control APIs' shared JSON conventions (internal/controlhttp).
var (
	methodNotAllowed = controlhttp.MethodNotAllowed
	writeJSON        = controlhttp.WriteJSON
	writeError       = controlhttp.WriteError
)
