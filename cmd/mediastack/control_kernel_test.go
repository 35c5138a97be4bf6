package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestSidecarControlHardened runs serve's control API and metrics with a
// bearer token: requests without it are refused, /healthz needs none, and
// a thousand idle and half-sent connections leave both servers answering.
func TestSidecarControlHardened(t *testing.T) {
	netnstest.RequireTUN(t)
	ns := netnstest.NewNamespace(t)
	const token = "0123456789abcdef0123456789abcdef"
	_, c := sidecarIn(t, ns, "mss8", "--control-token", token)

	get := func(url, tok string) int {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for _, tc := range []struct {
		url, token string
		want       int
	}{
		{"http://" + controlAddr + "/v1/relays", "", http.StatusUnauthorized},
		{"http://" + controlAddr + "/v1/relays", "not-the-token-at-all", http.StatusUnauthorized},
		{"http://" + controlAddr + "/v1/relays", token, http.StatusOK},
		{"http://" + controlAddr + "/healthz", "", http.StatusOK},
		{"http://" + metricsAddr + "/metrics", "", http.StatusUnauthorized},
		{"http://" + metricsAddr + "/metrics", token, http.StatusOK},
		{"http://" + metricsAddr + "/healthz", "", http.StatusOK},
	} {
		if got := tc.url; get(tc.url, tc.token) != tc.want {
			t.Errorf("GET %s with token %q: want %d", got, tc.token, tc.want)
		}
	}

	// Idle and slow connections, four times the default cap.
	var conns []net.Conn
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for i := range 1024 {
		var conn net.Conn
		err := ns.Enter(func() error {
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", controlAddr)
			return err
		})
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		conns = append(conns, conn)
		if i%2 == 1 {
			_, _ = conn.Write([]byte("POST /v1/relays HTTP/1.1\r\nHost: x\r\n"))
		}
	}
	if got := get("http://"+controlAddr+"/v1/relays", token); got != http.StatusOK {
		t.Errorf("GET /v1/relays with 1024 idle connections open = %d; want 200", got)
	}
	if got := get("http://"+metricsAddr+"/healthz", ""); got != http.StatusOK {
		t.Errorf("GET /healthz on metrics with 1024 idle connections on control = %d; want 200", got)
	}
}
