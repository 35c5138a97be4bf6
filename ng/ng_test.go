package ng_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/calls/callstest"
	"github.com/mediastack/mediastack/internal/bencode"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/ng"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var update = flag.Bool("update", false, "rewrite the golden SDPs in testdata/sdp from what the code produces")

// server is an ng server on a calltest fixture.
type server struct {
	*callstest.Fixture
	srv    *ng.Server
	cookie int
}

func newServer(t testing.TB, o callstest.Options) *server {
	t.Helper()
	f := callstest.New(t, o)
	srv, err := ng.New(ng.Options{Calls: f.Calls, Relays: f.Relays, Now: f.Clock})
	if err != nil {
		t.Fatal(err)
	}
	return &server{Fixture: f, srv: srv}
}

// raw sends one datagram and returns the reply's dictionary, checking its
// cookie.
func (s *server) raw(t testing.TB, cookie string, body []byte) bencode.Dict {
	t.Helper()
	reply := s.srv.Handle(callstest.ProxyAddr, append([]byte(cookie+" "), body...))
	rest, ok := bytes.CutPrefix(reply, []byte(cookie+" "))
	if !ok {
		t.Fatalf("reply %q does not start with the cookie %q", reply, cookie)
	}
	v, err := bencode.Unmarshal(rest)
	if err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	return v.(bencode.Dict)
}

// do sends req with a fresh cookie.
func (s *server) do(t testing.TB, req bencode.Dict) bencode.Dict {
	t.Helper()
	s.cookie++
	body, err := bencode.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return s.raw(t, "c"+itoa(s.cookie), body)
}

func itoa(n int) string {
	var b []byte
	for ; n >= 10; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(append([]byte{byte('0' + n)}, b...))
}

// ok sends req and fails unless the result is ok.
func (s *server) ok(t testing.TB, req bencode.Dict) bencode.Dict {
	t.Helper()
	d := s.do(t, req)
	if d["result"] != "ok" {
		t.Fatalf("%s: %v", req["command"], d)
	}
	return d
}

// kamailio builds a request as Kamailio's rtpengine module does from its
// FLAGS string (rtpengine-ng.md §2.1): bare words into flags, replace-X
// into replace, rtcp-mux-X into rtcp-mux, KEY=VALUE as a string key.
func kamailio(command, callID, fromTag, toTag, sdp, flags string) bencode.Dict {
	d := bencode.Dict{"command": command, "call-id": callID, "from-tag": fromTag, "supports": bencode.List{"load limit"},
		"received-from": bencode.List{"IP4", callstest.ProxyAddr.String()}}
	if toTag != "" {
		d["to-tag"] = toTag
	}
	if sdp != "" {
		d["sdp"] = sdp
	}
	appendTo := func(key, v string) {
		l, _ := d[key].(bencode.List)
		d[key] = append(l, v)
	}
	for _, f := range strings.Fields(flags) {
		switch k, v, kv := strings.Cut(f, "="); {
		case strings.HasPrefix(f, "replace-"):
			appendTo("replace", strings.TrimPrefix(f, "replace-"))
		case strings.HasPrefix(f, "rtcp-mux-"):
			appendTo("rtcp-mux", strings.TrimPrefix(f, "rtcp-mux-"))
		case kv:
			d[k] = v
		default:
			appendTo("flags", f)
		}
	}
	return d
}

// crlf turns a test file's lines into SDP's.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGoldenSDP: each directory of testdata/sdp is a call: offer.sdp with
// the Kamailio flags in offer.flags is offered by A (from-tag "a-tag"),
// and must come out as offer.out.sdp; answer.sdp with answer.flags is B's
// answer (to-tag "b-tag") and must come out as answer.out.sdp. R's
// addresses are 198.51.100.2 and 2001:db8::2; its ports are allocated
// from 30000 up, side A's pair first.
func TestGoldenSDP(t *testing.T) {
	dirs, err := filepath.Glob("testdata/sdp/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden SDPs: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			s := newServer(t, callstest.Options{})
			steps := []struct{ command, from, to string }{{"offer", "a-tag", ""}, {"answer", "a-tag", "b-tag"}}
			for _, step := range steps {
				in := filepath.Join(dir, step.command+".sdp")
				if _, err := os.Stat(in); err != nil {
					continue
				}
				flags, _ := os.ReadFile(filepath.Join(dir, step.command+".flags"))
				d := s.do(t, kamailio(step.command, "call-"+filepath.Base(dir), step.from, step.to, crlf(readFile(t, in)), string(flags)))
				if d["result"] != "ok" {
					t.Fatalf("%s: %v", step.command, d)
				}
				got := d["sdp"].(string)
				out := filepath.Join(dir, step.command+".out.sdp")
				if *update {
					if err := os.WriteFile(out, []byte(strings.ReplaceAll(got, "\r\n", "\n")), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if diff := cmp.Diff(crlf(readFile(t, out)), got); diff != "" {
					t.Errorf("%s of %s (-want +got):\n%s", step.command, in, diff)
				}
			}
		})
	}
}
