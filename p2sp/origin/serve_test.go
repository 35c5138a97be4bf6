package origin_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
	"github.com/mediastack/mediastack/p2sp/origin"
)

// TestServe: both servers on a node's listeners, on separate addresses,
// until the context ends; the web server's file bodies paced by WebRate.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	wav := mediatest.PCMWAV(8000, 1, 6*time.Second) // 96,000 bytes of samples
	if err := os.WriteFile(filepath.Join(dir, "a.wav"), wav, 0o644); err != nil {
		t.Fatal(err)
	}
	n := p2sp.HostNetwork()
	webL, err := n.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	infoL, err := n.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	webURL, infoURL := "http://"+webL.Addr().String(), "http://"+infoL.Addr().String()
	const rate = 64 << 10
	o, err := origin.New(origin.Options{Dir: dir, WebURL: webURL, InfoURL: infoURL, WebRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Serve(ctx, webL, infoL) }()

	if a := do(t, "GET", infoURL+"/healthz", nil); a.code != 200 {
		t.Errorf("healthz: %d", a.code)
	}
	start := time.Now()
	a := do(t, "GET", webURL+"/files/"+string(idOf(wav))+".wav", nil)
	elapsed := time.Since(start)
	if a.code != 200 || !bytes.Equal(a.body, wav) {
		t.Fatalf("GET: %d, %d bytes", a.code, len(a.body))
	}
	// A 64 KiB burst, then 64 KiB/s: the rest takes about 0.48 s.
	if min := time.Duration(float64(len(wav)-rate) / rate * float64(time.Second) * 0.9); elapsed < min {
		t.Errorf("%d bytes at %d B/s in %v, want at least %v", len(wav), rate, elapsed, min)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the context ended")
	}
	if c, err := net.DialTimeout("tcp", webL.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the web listener is still open")
	}
	if _, err := origin.New(origin.Options{Dir: dir, WebURL: webURL, InfoURL: infoURL, WebRate: -1}); err == nil {
		t.Error("negative WebRate accepted")
	}
}
