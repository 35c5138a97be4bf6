package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var (
	idA = p2sp.FileID(strings.Repeat("a", 64))
	idB = p2sp.FileID(strings.Repeat("b", 64))
)

// fakeManager holds each fetch until the test releases it with an outcome.
type fakeManager struct {
	mu      sync.Mutex
	calls   map[p2sp.FileID]int
	release map[p2sp.FileID]chan outcome
}

type outcome struct {
	res client.Result
	err error
}

func newFake() *fakeManager {
	return &fakeManager{calls: map[p2sp.FileID]int{}, release: map[p2sp.FileID]chan outcome{}}
}

func (f *fakeManager) ch(id p2sp.FileID) chan outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.release[id]
	if !ok {
		c = make(chan outcome, 1)
		f.release[id] = c
	}
	return c
}

func (f *fakeManager) Fetch(ctx context.Context, id p2sp.FileID, progress func(client.Progress)) (client.Result, error) {
	f.mu.Lock()
	f.calls[id]++
	f.mu.Unlock()
	progress(client.Progress{Method: client.MethodP2SP, Done: 1000, Size: 4000, Rate: 500, Sources: map[string]int64{"web": 600, "198.51.100.3": 400}})
	select {
	case o := <-f.ch(id):
		return o.res, o.err
	case <-ctx.Done():
		return client.Result{}, ctx.Err()
	}
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, http.Header, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Header(), w.Body.String()
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return v
}

// waitState polls the API (no network: each Get is a map lookup) until id's
// fetch is in state, or fails after a deadline.
func waitState(t *testing.T, a *API, id p2sp.FileID, state State) FetchJSON {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, ok := a.Get(id)
		if ok && j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch %s: %+v, want state %s", id, j, state)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFetchLifecycle(t *testing.T) {
	fake := newFake()
	a := newAPI(fake, nil)
	defer a.Close()
	h := a.Handler()

	code, hdr, body := do(t, h, "POST", "/v1/p2sp/fetches", `{"id":"`+string(idA)+`"}`)
	if code != http.StatusAccepted || hdr.Get("Location") != "/v1/p2sp/fetches/"+string(idA) {
		t.Fatalf("POST: %d %v %s", code, hdr, body)
	}
	if j := decode[FetchJSON](t, body); j.ID != idA || j.State != Running {
		t.Fatalf("POST: %+v", j)
	}
	// The progress shows while running, and a second POST returns the
	// running fetch rather than starting another.
	deadline := time.Now().Add(10 * time.Second)
	for j, _ := a.Get(idA); j.Bytes == 0; j, _ = a.Get(idA) {
		if time.Now().After(deadline) {
			t.Fatal("no progress shown")
		}
		time.Sleep(time.Millisecond)
	}
	code, _, body = do(t, h, "POST", "/v1/p2sp/fetches", `{"id":"`+string(idA)+`"}`)
	if code != http.StatusOK {
		t.Fatalf("second POST: %d %s", code, body)
	}
	code, _, body = do(t, h, "GET", "/v1/p2sp/fetches/"+string(idA), "")
	got := decode[FetchJSON](t, body)
	want := FetchJSON{ID: idA, State: Running, Bytes: 1000, Total: 4000, Rate: 500, Method: client.MethodP2SP,
		Sources: map[string]int64{"web": 600, "198.51.100.3": 400}}
	if code != http.StatusOK {
		t.Fatalf("GET: %d %s", code, body)
	}
	if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
		t.Errorf("GET running (-want +got):\n%s", diff)
	}

	fake.ch(idA) <- outcome{res: client.Result{Path: "/cache/a.wav", Method: client.MethodP2SP, Record: p2sp.Record{Size: 4000},
		Sources: map[string]int64{"web": 3000, "198.51.100.3": 1000}, Elapsed: 2 * time.Second}}
	got = waitState(t, a, idA, Done)
	want = FetchJSON{ID: idA, State: Done, Bytes: 4000, Total: 4000, Rate: 2000, Method: client.MethodP2SP, Path: "/cache/a.wav",
		Sources: map[string]int64{"web": 3000, "198.51.100.3": 1000}}
	if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
		t.Errorf("done (-want +got):\n%s", diff)
	}
	fake.mu.Lock()
	calls := fake.calls[idA]
	fake.mu.Unlock()
	if calls != 1 {
		t.Errorf("Fetch called %d times for one running id, want 1", calls)
	}

	// A failed verification shows the origin's notice.
	do(t, h, "POST", "/v1/p2sp/fetches", `{"id":"`+string(idB)+`"}`)
	fake.ch(idB) <- outcome{err: &client.FetchError{Report: p2sp.Report{ID: idB, Stage: "hash"},
		Answer: p2sp.ReportAnswer{Status: p2sp.StatusDamaged, Notice: "the file is damaged; ask the sender again"}}}
	failed := waitState(t, a, idB, Failed)
	if failed.Status != p2sp.StatusDamaged || failed.Notice != "the file is damaged; ask the sender again" || !strings.Contains(failed.Error, "hash") {
		t.Errorf("failed fetch: %+v", failed)
	}

	code, _, body = do(t, h, "GET", "/v1/p2sp/fetches", "")
	list := decode[ListJSON](t, body)
	if code != http.StatusOK || len(list.Fetches) != 2 || list.Fetches[0].ID != idA || list.Fetches[1].ID != idB {
		t.Errorf("list: %d %s", code, body)
	}

	// Done and failed ids start again.
	if code, _, body := do(t, h, "POST", "/v1/p2sp/fetches", `{"id":"`+string(idB)+`"}`); code != http.StatusAccepted {
		t.Errorf("POST after a failure: %d %s", code, body)
	}
}

var ignoreTimes = cmp.FilterPath(func(p cmp.Path) bool {
	s := p.String()
	return s == "Started" || s == "ElapsedNS"
}, cmp.Ignore())

func TestCloseEndsFetches(t *testing.T) {
	a := newAPI(newFake(), nil)
	if _, started, err := a.Start(idA); err != nil || !started {
		t.Fatal(started, err)
	}
	a.Close()
	j, _ := a.Get(idA)
	if j.State != Failed || !strings.Contains(j.Error, context.Canceled.Error()) {
		t.Errorf("after Close: %+v, want failed, canceled", j)
	}
	if _, _, err := a.Start(idB); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if code, _, body := do(t, a.Handler(), "POST", "/v1/p2sp/fetches", `{"id":"`+string(idB)+`"}`); code != http.StatusServiceUnavailable {
		t.Errorf("POST after Close: %d %s", code, body)
	}
}

func TestErrors(t *testing.T) {
	a := newAPI(newFake(), nil)
	defer a.Close()
	h := a.Handler()
	for _, tc := range []struct {
		method, path, body string
		code               int
		allow, text        string
	}{
		{"POST", "/v1/p2sp/fetches", `{"id":"nothex"}`, 400, "", "hex"},
		{"POST", "/v1/p2sp/fetches", `{"file":"x"}`, 400, "", "unknown field"},
		{"POST", "/v1/p2sp/fetches", `{"id":"` + string(idA) + `"} {}`, 400, "", "after the JSON"},
		{"POST", "/v1/p2sp/fetches", `{"id":"` + strings.Repeat("a", 70000) + `"}`, 413, "", "over"},
		{"GET", "/v1/p2sp/fetches/" + string(idA), "", 404, "", "no fetch"},
		{"GET", "/v1/p2sp/fetches/zz", "", 404, "", "no fetch"},
		{"DELETE", "/v1/p2sp/fetches", "", 405, "GET, POST", "not allowed"},
		{"PUT", "/v1/p2sp/fetches/" + string(idA), "", 405, "GET", "not allowed"},
		{"GET", "/v1/p2sp/other", "", 404, "", "under /v1/p2sp/fetches"},
	} {
		code, hdr, body := do(t, h, tc.method, tc.path, tc.body)
		e := decode[ErrorJSON](t, body)
		if code != tc.code || hdr.Get("Allow") != tc.allow || !strings.Contains(e.Error, tc.text) {
			t.Errorf("%s %s: %d Allow %q %q, want %d Allow %q, an error with %q", tc.method, tc.path[:min(len(tc.path), 40)], code, hdr.Get("Allow"), e.Error, tc.code, tc.allow, tc.text)
		}
	}
}
