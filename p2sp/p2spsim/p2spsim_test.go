package p2spsim_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/p2sp/p2spsim"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestCappedTransferTakesRealTime checks the two things the P2SP tests rely
// on: nodes reach each other over TCP on both families, and the cap holds
// on the wall clock (the clock is paced, not run flat out).
func TestCappedTransferTakesRealTime(t *testing.T) {
	const bandwidth = 16_000_000 // bits/s
	lan, err := p2spsim.New(p2spsim.Options{Seed: 1, Bandwidth: bandwidth},
		p2spsim.NodeOptions{Name: "server", Extra: 1}, p2spsim.NodeOptions{Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	server, client := lan.Node("server"), lan.Node("client")
	body := bytes.Repeat([]byte("p2sp"), 256<<10) // 1 MiB
	for _, v6 := range []bool{false, true} {
		ln, err := server.Net.Listen(server.AddrPort(1, 80, v6))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
		go srv.Serve(ln)
		hc := &http.Client{Transport: &http.Transport{DialContext: client.Net.DialContext}}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+server.AddrPort(1, 80, v6).String()+"/", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("v6=%v: %v", v6, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		cancel()
		hc.CloseIdleConnections()
		srv.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("v6=%v: read %d bytes, err %v; want the %d sent", v6, len(got), err, len(body))
		}
		if min := time.Duration(len(body)*8) * time.Second / bandwidth; elapsed < min {
			t.Errorf("v6=%v: %d bytes in %v over a %d bit/s cap, faster than the cap allows (%v)", v6, len(body), elapsed, bandwidth, min)
		}
	}
}
