package origin_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/media"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
	"github.com/mediastack/mediastack/p2sp/origin"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// fixture is an origin over a folder of test files, its two servers on
// loopback listeners.
type fixture struct {
	o         *origin.Origin
	dir       string
	web, info *httptest.Server
	files     map[string][]byte // by name in dir
}

func idOf(b []byte) p2sp.FileID {
	s := sha256.Sum256(b)
	return p2sp.FileID(hex.EncodeToString(s[:]))
}

func newFixture(t *testing.T, remoteInfo bool) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir(), files: map[string][]byte{
		"voice.wav":  mediatest.PCMWAV(8000, 1, 2*time.Second),
		"voice.ogg":  mediatest.OggOpus(150, 10),
		"clip.MP4":   mediatest.MP4("vide", 3*time.Second, 50, false),
		"notes.txt":  []byte("HTTP only, not media\n"),
		"broken.ogg": mediatest.OggOpus(40, 5)[:600],
	}}
	for name, b := range fx.files {
		if err := os.WriteFile(filepath.Join(fx.dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(fx.dir, ".hidden"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(fx.dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	fx.web = httptest.NewUnstartedServer(nil)
	fx.info = httptest.NewUnstartedServer(nil)
	opts := origin.Options{
		Dir:     fx.dir,
		WebURL:  "http://" + fx.web.Listener.Addr().String(),
		InfoURL: "http://" + fx.info.Listener.Addr().String() + "/",
		NoP2P:   func(name string) bool { return name == "notes.txt" },
	}
	if remoteInfo {
		opts.InfoClient = &http.Client{Timeout: 10 * time.Second}
	}
	o, err := origin.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	fx.o = o
	fx.web.Config.Handler = o.WebHandler()
	fx.info.Config.Handler = o.InfoHandler()
	fx.web.Start()
	fx.info.Start()
	t.Cleanup(func() {
		fx.web.Close()
		fx.info.Close()
		if remoteInfo {
			opts.InfoClient.CloseIdleConnections()
		}
	})
	return fx
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, u string, body []byte, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func (a answer) jsonError(t *testing.T, code int) string {
	t.Helper()
	var e struct{ Error string }
	if a.code != code || json.Unmarshal(a.body, &e) != nil || e.Error == "" {
		t.Fatalf("answer %d %q, want %d with a JSON error", a.code, a.body, code)
	}
	return e.Error
}

func (a answer) record(t *testing.T) p2sp.Record {
	t.Helper()
	var rec p2sp.Record
	if a.code != 200 || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %s %q, want a JSON record", a.code, a.header.Get("Content-Type"), a.body)
	}
	if err := json.Unmarshal(a.body, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestPublish(t *testing.T) {
	fx := newFixture(t, false)
	recs := fx.o.Records()
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5 (hidden files and folders skipped)", len(recs))
	}
	for _, tc := range []struct {
		file      string
		ext       string
		mediaType string
		duration  time.Duration
		p2p       bool
	}{
		{"voice.wav", ".wav", media.TypeWAV, 2 * time.Second, true},
		{"voice.ogg", ".ogg", media.TypeOgg, 3*time.Second - mediatest.OpusPreSkip*time.Second/48000, true},
		{"clip.MP4", ".mp4", media.TypeMP4, 3 * time.Second, true},
		{"notes.txt", ".txt", "text/plain; charset=utf-8", 0, false},
		{"broken.ogg", ".ogg", "audio/ogg", 0, true},
	} {
		id := idOf(fx.files[tc.file])
		rec, ok := fx.o.Record(id)
		if !ok {
			t.Errorf("%s not published", tc.file)
			continue
		}
		want := p2sp.Record{ID: id, Name: string(id) + tc.ext, Size: int64(len(fx.files[tc.file])), MediaType: tc.mediaType, Duration: tc.duration, Status: p2sp.StatusOK}
		if tc.p2p {
			want.PieceLength = p2sp.MinPieceLength
			want.InfoHash = rec.InfoHash
			if len(rec.InfoHash) != 40 {
				t.Errorf("%s: infohash %q", tc.file, rec.InfoHash)
			}
		}
		if rec != want {
			t.Errorf("%s: record\n%+v, want\n%+v", tc.file, rec, want)
		}
	}
}

func TestWebFiles(t *testing.T) {
	fx := newFixture(t, false)
	wav := fx.files["voice.wav"]
	id := idOf(wav)
	base := fx.web.URL + "/files/" + string(id)
	for _, u := range []string{base, base + ".wav"} {
		a := do(t, "GET", u, nil)
		if a.code != 200 || !bytes.Equal(a.body, wav) || a.header.Get("ETag") != `"`+string(id)+`"` || a.header.Get("Content-Type") != media.TypeWAV || a.header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("GET %s: %d, %d bytes, headers %v", u, a.code, len(a.body), a.header)
		}
	}
	if a := do(t, "HEAD", base+".wav", nil); a.code != 200 || len(a.body) != 0 || a.header.Get("Content-Length") != fmt.Sprint(len(wav)) {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %s", a.code, len(a.body), a.header.Get("Content-Length"))
	}
	for _, tc := range []struct {
		rng       string
		code      int
		body      []byte
		contRange string
	}{
		{"bytes=10-19", 206, wav[10:20], fmt.Sprintf("bytes 10-19/%d", len(wav))},
		{"bytes=100-", 206, wav[100:], fmt.Sprintf("bytes 100-%d/%d", len(wav)-1, len(wav))},
		{"bytes=-50", 206, wav[len(wav)-50:], fmt.Sprintf("bytes %d-%d/%d", len(wav)-50, len(wav)-1, len(wav))},
		{fmt.Sprintf("bytes=%d-", len(wav)), 416, nil, fmt.Sprintf("bytes */%d", len(wav))},
	} {
		a := do(t, "GET", base+".wav", nil, "Range", tc.rng)
		if a.code != tc.code || a.header.Get("Content-Range") != tc.contRange || (tc.body != nil && !bytes.Equal(a.body, tc.body)) {
			t.Errorf("Range %s: %d, Content-Range %q, %d bytes; want %d, %q, %d bytes", tc.rng, a.code, a.header.Get("Content-Range"), len(a.body), tc.code, tc.contRange, len(tc.body))
		}
	}
	// If-Range with the ETag keeps the range; a stale one gets the whole file.
	if a := do(t, "GET", base, nil, "Range", "bytes=0-3", "If-Range", `"`+string(id)+`"`); a.code != 206 || string(a.body) != "RIFF" {
		t.Errorf("If-Range current: %d %q", a.code, a.body)
	}
	if a := do(t, "GET", base, nil, "Range", "bytes=0-3", "If-Range", `"stale"`); a.code != 200 || len(a.body) != len(wav) {
		t.Errorf("If-Range stale: %d, %d bytes", a.code, len(a.body))
	}
	if a := do(t, "GET", base, nil, "If-None-Match", `"`+string(id)+`"`); a.code != 304 {
		t.Errorf("If-None-Match: %d, want 304", a.code)
	}
	// The HTTP-only file is on the web server too.
	if a := do(t, "GET", fx.web.URL+"/files/"+string(idOf(fx.files["notes.txt"]))+".txt", nil); a.code != 200 || !bytes.Equal(a.body, fx.files["notes.txt"]) {
		t.Errorf("HTTP-only file: %d", a.code)
	}
	for _, u := range []string{base + ".ogg", base + ".wav.torrent", fx.web.URL + "/files/" + strings.Repeat("0", 64), fx.web.URL + "/files/zz", fx.web.URL + "/nothing"} {
		do(t, "GET", u, nil).jsonError(t, 404)
	}
	s := fx.o.Stats()
	if s.Ranges != 4 || s.Requests["web GET /files/{name}"] != 15 || s.WebRequests != 16 || s.InfoRequests != 0 {
		t.Errorf("stats %+v, want 4 ranges, 15 file requests, 16 in all, 0 info requests", s)
	}
	// File bytes only: not the 416's or 404s' error texts.
	if want := int64(3*len(wav) + 10 + len(wav) - 100 + 50 + 4 + len(fx.files["notes.txt"])); s.BytesServed != want {
		t.Errorf("BytesServed %d, want %d", s.BytesServed, want)
	}
}

func TestP2PInfo(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote=%v", remote), func(t *testing.T) {
			fx := newFixture(t, remote)
			ogg := fx.files["voice.ogg"]
			id := idOf(ogg)
			rec, _ := fx.o.Record(id)
			if got := do(t, "GET", fx.web.URL+"/p2p/"+string(id), nil).record(t); got != rec {
				t.Errorf("web /p2p: %+v, want %+v", got, rec)
			}
			if got := do(t, "GET", fx.info.URL+"/files/"+string(id), nil).record(t); got != rec {
				t.Errorf("info /files: %+v, want %+v", got, rec)
			}
			for _, u := range []string{fx.web.URL + "/p2p/" + string(id) + ".torrent", fx.info.URL + "/files/" + string(id) + ".torrent"} {
				a := do(t, "GET", u, nil)
				if a.code != 200 || a.header.Get("Content-Type") != "application/x-bittorrent" {
					t.Fatalf("GET %s: %d %s", u, a.code, a.header.Get("Content-Type"))
				}
				mi, err := metainfo.Load(bytes.NewReader(a.body))
				if err != nil {
					t.Fatal(err)
				}
				info, err := mi.UnmarshalInfo()
				if err != nil {
					t.Fatal(err)
				}
				if mi.HashInfoBytes().HexString() != rec.InfoHash || info.Name != rec.Name || info.Length != int64(len(ogg)) ||
					len(mi.UrlList) != 1 || mi.UrlList[0] != fx.web.URL+"/files/" || mi.Announce != fx.info.URL+"/announce" {
					t.Errorf("metainfo: infohash %s name %s length %d url-list %v announce %s", mi.HashInfoBytes().HexString(), info.Name, info.Length, mi.UrlList, mi.Announce)
				}
				want, err := p2sp.BuildMetainfo(filepath.Join(fx.dir, "voice.ogg"), rec.Name, mi.Announce, mi.UrlList[0])
				if err != nil || !bytes.Equal(want.InfoBytes, mi.InfoBytes) {
					t.Errorf("metainfo differs from BuildMetainfo's (%v)", err)
				}
			}
			// HTTP-only and unknown files: 404 from both.
			for _, u := range []string{
				fx.web.URL + "/p2p/" + string(idOf(fx.files["notes.txt"])), fx.web.URL + "/p2p/" + string(idOf(fx.files["notes.txt"])) + ".torrent",
				fx.info.URL + "/files/" + string(idOf(fx.files["notes.txt"])), fx.info.URL + "/files/" + string(idOf(fx.files["notes.txt"])) + ".torrent",
				fx.web.URL + "/p2p/" + strings.Repeat("a", 64), fx.info.URL + "/files/" + strings.Repeat("a", 64), fx.web.URL + "/p2p/junk",
			} {
				do(t, "GET", u, nil).jsonError(t, 404)
			}
			s := fx.o.Stats()
			wantInfo := int64(5)
			if remote {
				wantInfo += 5 // the web server's own questions for /p2p/
			}
			if s.InfoRequests != wantInfo {
				t.Errorf("InfoRequests %d, want %d", s.InfoRequests, wantInfo)
			}
			if h := do(t, "GET", fx.info.URL+"/healthz", nil); h.code != 200 || !strings.Contains(string(h.body), `"files":5`) {
				t.Errorf("healthz: %d %s", h.code, h.body)
			}
		})
	}
}

func TestTrackerOnInfoServer(t *testing.T) {
	fx := newFixture(t, false)
	rec, _ := fx.o.Record(idOf(fx.files["voice.wav"]))
	ih := metainfo.NewHashFromHex(rec.InfoHash)
	q := url.Values{"info_hash": {string(ih[:])}, "peer_id": {strings.Repeat("p", 20)}, "port": {"6881"}, "left": {"0"}}
	var resp map[string]any
	a := do(t, "GET", fx.info.URL+"/announce?"+q.Encode(), nil)
	if err := bencode.Unmarshal(a.body, &resp); err != nil || resp["interval"] == nil {
		t.Fatalf("announce: %q %v", a.body, err)
	}
	// The HTTP-only file has no swarm.
	txt := sha256.Sum256(fx.files["notes.txt"])
	q.Set("info_hash", string(txt[:20]))
	a = do(t, "GET", fx.info.URL+"/announce?"+q.Encode(), nil)
	if err := bencode.Unmarshal(a.body, &resp); err != nil || resp["failure reason"] == nil {
		t.Fatalf("announce for an unknown infohash: %q %v", a.body, err)
	}
	if n := len(fx.o.Tracker().Peers(ih)); n != 1 {
		t.Errorf("%d peers, want 1", n)
	}
}

func report(t *testing.T, fx *fixture, rep p2sp.Report) (int, p2sp.ReportAnswer) {
	t.Helper()
	b, _ := json.Marshal(rep)
	a := do(t, "POST", fx.web.URL+"/reports", b, "Content-Type", "application/json")
	var ans p2sp.ReportAnswer
	if a.code == 200 {
		if err := json.Unmarshal(a.body, &ans); err != nil {
			t.Fatal(err)
		}
	}
	return a.code, ans
}

func TestReports(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote=%v", remote), func(t *testing.T) {
			fx := newFixture(t, remote)
			wavID, oggID, brokenID, mp4ID := idOf(fx.files["voice.wav"]), idOf(fx.files["voice.ogg"]), idOf(fx.files["broken.ogg"]), idOf(fx.files["clip.MP4"])

			// A bad peer, the origin intact: ok, with the notice.
			code, ans := report(t, fx, p2sp.Report{ID: wavID, Stage: p2sp.StagePieces, BadPieces: []int{0}, BannedPeers: []string{"198.51.100.7"}})
			if code != 200 || ans != (p2sp.ReportAnswer{Status: p2sp.StatusOK, Notice: origin.NoticeBadPeer}) {
				t.Errorf("bad peer: %d %+v", code, ans)
			}
			if _, ans = report(t, fx, p2sp.Report{ID: wavID, Stage: p2sp.StageStorage}); ans.Status != p2sp.StatusOK || ans.Notice != origin.NoticeStorage {
				t.Errorf("storage: %+v", ans)
			}
			if _, ans = report(t, fx, p2sp.Report{ID: wavID, Stage: p2sp.StageOrigin}); ans.Status != p2sp.StatusOK || ans.Notice != origin.NoticeOriginIntact {
				t.Errorf("origin stage, intact origin: %+v", ans)
			}

			// A bad origin: its copy changed on disk after publishing.
			path := filepath.Join(fx.dir, "voice.ogg")
			bad := bytes.Clone(fx.files["voice.ogg"])
			bad[len(bad)/2] ^= 1
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Minute)
			if err := os.Chtimes(path, later, later); err != nil {
				t.Fatal(err)
			}
			code, ans = report(t, fx, p2sp.Report{ID: oggID, Stage: p2sp.StageSHA256})
			want := p2sp.ReportAnswer{Status: p2sp.StatusDamaged, Notice: origin.NoticeOriginDamaged}
			if code != 200 || ans != want {
				t.Errorf("bad origin: %d %+v, want %+v", code, ans, want)
			}
			for _, u := range []string{fx.web.URL + "/p2p/" + string(oggID), fx.info.URL + "/files/" + string(oggID)} {
				if rec := do(t, "GET", u, nil).record(t); rec.Status != p2sp.StatusDamaged || rec.Notice != origin.NoticeOriginDamaged {
					t.Errorf("%s after the verdict: %s %q", u, rec.Status, rec.Notice)
				}
			}
			// Later reports keep the verdict, whatever their stage.
			if _, ans = report(t, fx, p2sp.Report{ID: oggID, Stage: p2sp.StagePieces}); ans != want {
				t.Errorf("later report: %+v", ans)
			}

			// A file the origin itself cannot play.
			if _, ans = report(t, fx, p2sp.Report{ID: brokenID, Stage: p2sp.StagePieces}); ans != (p2sp.ReportAnswer{Status: p2sp.StatusDamaged, Notice: origin.NoticeUnplayable}) {
				t.Errorf("unplayable at the origin: %+v", ans)
			}
			// A client that finds the verified bytes unplayable is believed.
			if _, ans = report(t, fx, p2sp.Report{ID: mp4ID, Stage: p2sp.StagePlayable, Detail: "ffprobe: moov atom not found"}); ans.Status != p2sp.StatusDamaged || ans.Notice != origin.NoticeUnplayable {
				t.Errorf("client says unplayable: %+v", ans)
			}

			// Bad reports.
			for _, body := range []string{`{`, `{"id":"x","stage":"pieces"}`, `{"id":"` + string(wavID) + `","stage":"vibes"}`, strings.Repeat(" ", 2<<20)} {
				a := do(t, "POST", fx.web.URL+"/reports", []byte(body))
				a.jsonError(t, 400)
			}
			if code, _ := report(t, fx, p2sp.Report{ID: p2sp.FileID(strings.Repeat("b", 64)), Stage: p2sp.StagePieces}); code != 404 {
				t.Errorf("report on an unknown file: %d, want 404", code)
			}
			if n := len(fx.o.Reports()); n != 7 {
				t.Errorf("%d reports logged, want 7", n)
			}
			if s := fx.o.Stats(); s.Reports != 8 {
				t.Errorf("Stats.Reports %d, want 8", s.Reports)
			}
			if rec, _ := fx.o.Record(wavID); rec.Status != p2sp.StatusOK || rec.Notice != "" {
				t.Errorf("the intact file: %+v", rec)
			}
		})
	}
}

func TestStatusEndpoint(t *testing.T) {
	fx := newFixture(t, false)
	id := idOf(fx.files["voice.wav"])
	u := fx.info.URL + "/files/" + string(id) + "/status"
	rec := do(t, "POST", u, []byte(`{"status":"damaged","notice":"gone bad"}`)).record(t)
	if rec.Status != p2sp.StatusDamaged || rec.Notice != "gone bad" {
		t.Errorf("after POST status: %+v", rec)
	}
	do(t, "POST", u, []byte(`{"status":"meh"}`)).jsonError(t, 400)
	do(t, "POST", fx.info.URL+"/files/"+strings.Repeat("c", 64)+"/status", []byte(`{"status":"ok"}`)).jsonError(t, 404)
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []origin.Options{
		{WebURL: "http://a", InfoURL: "http://b"},
		{Dir: dir, WebURL: "ftp://a", InfoURL: "http://b"},
		{Dir: dir, WebURL: "http://a", InfoURL: ""},
		{Dir: filepath.Join(dir, "missing"), WebURL: "http://a", InfoURL: "http://b"},
	} {
		if _, err := origin.New(o); err == nil {
			t.Errorf("New(%+v) passed", o)
		}
	}
}

func TestPublishLater(t *testing.T) {
	fx := newFixture(t, false)
	path := filepath.Join(t.TempDir(), "late.wav")
	wav := mediatest.MuLawWAV(40 * time.Millisecond)
	if err := os.WriteFile(path, wav, 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := fx.o.Publish(path, false)
	if err != nil || rec.InfoHash != "" || rec.ID != idOf(wav) || rec.Duration != 40*time.Millisecond {
		t.Fatalf("Publish without P2P: %+v, %v", rec, err)
	}
	do(t, "GET", fx.web.URL+"/p2p/"+string(rec.ID), nil).jsonError(t, 404)
	if a := do(t, "GET", fx.web.URL+"/files/"+rec.Name, nil); a.code != 200 || !bytes.Equal(a.body, wav) {
		t.Fatalf("GET the HTTP-only file: %d", a.code)
	}
	// Published again with P2P: the file-info server has it now.
	if rec, err = fx.o.Publish(path, true); err != nil || rec.InfoHash == "" {
		t.Fatalf("Publish with P2P: %+v, %v", rec, err)
	}
	if got := do(t, "GET", fx.info.URL+"/files/"+string(rec.ID), nil).record(t); got != rec {
		t.Errorf("record %+v, want %+v", got, rec)
	}
	if _, err := fx.o.Publish(filepath.Join(t.TempDir(), "missing"), true); err == nil {
		t.Error("publishing a missing file: no error")
	}
}
