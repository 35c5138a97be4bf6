package origin_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mediastack/mediastack/p2sp/media/mediatest"
	"github.com/mediastack/mediastack/p2sp/origin"
)

// FuzzReport: any report body gets a JSON answer (a verdict or an error),
// never a panic.
func FuzzReport(f *testing.F) {
	dir := f.TempDir()
	wav := mediatest.MuLawWAV(20 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "a.wav"), wav, 0o644); err != nil {
		f.Fatal(err)
	}
	o, err := origin.New(origin.Options{Dir: dir, WebURL: "http://198.51.100.10", InfoURL: "http://198.51.100.11"})
	if err != nil {
		f.Fatal(err)
	}
	h := o.WebHandler()
	id := string(idOf(wav))
	f.Add(`{"id":"` + id + `","stage":"pieces","bad_pieces":[0,1],"banned_peers":["198.51.100.7"]}`)
	f.Add(`{"id":"` + id + `","stage":"playable","detail":"x"}`)
	f.Add(`{"id":"` + id + `","stage":"origin"}{}`)
	f.Add(`{"id":7}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/reports", bytes.NewReader([]byte(body))))
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("answer %d %q: %v", w.Code, w.Body.Bytes(), err)
		}
		if _, isErr := v["error"]; isErr == (w.Code == 200) {
			t.Fatalf("answer %d %v", w.Code, v)
		}
	})
}
