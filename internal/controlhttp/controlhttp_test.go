package controlhttp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		token    bool
		want     string
		wantErr  string
		needsTok bool
	}{
		{addr: "8080", want: "127.0.0.1:8080"},
		{addr: ":8080", want: "127.0.0.1:8080"},
		{addr: "127.0.0.1:8080", want: "127.0.0.1:8080"},
		{addr: "127.0.0.53:8080", want: "127.0.0.53:8080"},
		{addr: "[::1]:8080", want: "[::1]:8080"},
		{addr: "localhost:8080", want: "localhost:8080"},
		{addr: "0.0.0.0:8080", needsTok: true},
		{addr: "[::]:8080", needsTok: true},
		{addr: "198.51.100.1:8080", needsTok: true},
		{addr: "ctl.example:8080", needsTok: true},
		{addr: "0.0.0.0:8080", token: true, want: "0.0.0.0:8080"},
		{addr: "198.51.100.1:8080", token: true, want: "198.51.100.1:8080"},
		{addr: "127.0.0.1", wantErr: "want HOST:PORT"},
		{addr: "127.0.0.1:http", wantErr: "not a number"},
		{addr: "99999", wantErr: "want HOST:PORT"},
	} {
		got, err := CheckAddr(tc.addr, tc.token)
		switch {
		case tc.needsTok:
			if !errors.Is(err, ErrNeedsToken) {
				t.Errorf("CheckAddr(%q, %v) = %q, %v; want ErrNeedsToken", tc.addr, tc.token, got, err)
			}
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("CheckAddr(%q, %v) = %q, %v; want an error with %q", tc.addr, tc.token, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("CheckAddr(%q, %v) = %q, %v; want %q", tc.addr, tc.token, got, err, tc.want)
		}
	}
}

func TestListenRefusesWildcardWithoutToken(t *testing.T) {
	if s, err := Listen(Options{Addr: "0.0.0.0:0", Handler: http.NotFoundHandler(), Log: quiet()}); !errors.Is(err, ErrNeedsToken) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Listen(0.0.0.0:0) without a token = %v; want ErrNeedsToken", err)
	}
	s, err := Listen(Options{Addr: ":0", Handler: http.NotFoundHandler(), Log: quiet()})
	if err != nil {
		t.Fatalf("Listen(:0) = %v; a bare port is loopback", err)
	}
	defer s.Close()
	if ip := s.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("Listen(:0) listens on %v; want loopback", ip)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func start(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Handler == nil {
		opts.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
				return
			}
			fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
		})
	}
	opts.Log = quiet()
	s, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, "http://" + s.Addr().String()
}

func client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestToken(t *testing.T) {
	s, url := start(t, Options{Token: "s3cret"})
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/v1/relays", "", http.StatusUnauthorized},
		{"/v1/relays", "wrong", http.StatusUnauthorized},
		{"/v1/relays", "s3cre", http.StatusUnauthorized},
		{"/v1/relays", "s3cret", http.StatusOK},
		{"/healthz", "", http.StatusOK},
	} {
		if code, body := get(t, url+tc.path, tc.token); code != tc.code {
			t.Errorf("GET %s with token %q = %d %q; want %d", tc.path, tc.token, code, body, tc.code)
		}
	}
	if got := s.Unauthorized(); got != 3 {
		t.Errorf("Unauthorized() = %d; want 3", got)
	}
}

func TestTokenWithWhiteSpaceRefused(t *testing.T) {
	if _, err := Listen(Options{Addr: "127.0.0.1:0", Handler: http.NotFoundHandler(), Token: "a b", Log: quiet()}); err == nil {
		t.Fatal("Listen accepted a token with a space")
	}
}

func TestHealthz(t *testing.T) {
	_, url := start(t, Options{})
	if code, body := get(t, url+"/healthz", ""); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q; want 200 \"ok\\n\"", code, body)
	}
}

func TestBodyLimit(t *testing.T) {
	_, url := start(t, Options{MaxBodyBytes: 1024})
	resp, err := client().Post(url+"/v1/relays", "application/json", strings.NewReader(strings.Repeat("x", 4096)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of 4 KiB with a 1 KiB limit = %d; want 413", resp.StatusCode)
	}
}

// TestIdleAndSlowConnectionsLeaveItAnswering opens far more idle and slow
// (half a request line, then nothing) connections than the cap allows; a
// real request still gets its answer, and the extra connections were
// evicted rather than left to exhaust file descriptors.
func TestIdleAndSlowConnectionsLeaveItAnswering(t *testing.T) {
	const maxConns, attackers = 32, 1000
	s, url := start(t, Options{MaxConns: maxConns})
	addr := s.Addr().String()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range attackers {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 1 { // slowloris: a partial request line
			if _, err := c.Write([]byte("GET /v1/rel")); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
	}
	if code, body := get(t, url+"/v1/relays", ""); code != http.StatusOK || body != "GET /v1/relays 0" {
		t.Fatalf("GET /v1/relays with %d idle connections = %d %q; want 200", attackers, code, body)
	}
	if ev := s.Evicted(); ev < attackers-maxConns {
		t.Errorf("Evicted() = %d; want at least %d", ev, attackers-maxConns)
	}
}

// TestActiveRequestIsNotEvicted holds a request in progress while the cap
// is overrun: it completes.
func TestActiveRequestIsNotEvicted(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, "done")
	})
	s, _ := start(t, Options{MaxConns: 4, Handler: h})
	addr := s.Addr().String()
	slow, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the handler")
	}
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 20 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// A request on a fresh connection goes through the server's accept
	// loop after the 20 above, so the evictions have happened.
	resp, err := client().Get("http://" + addr + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(release)
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := bufio.NewReader(slow).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("the request in progress got %q, %v; want its 200 answer", status, err)
	}
}
