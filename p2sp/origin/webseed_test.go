package origin_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// TestAnacrolixWebSeed: anacrolix/torrent downloads a published file from
// the web server alone, as a BEP 19 web seed (url-list ".../files/" with the
// torrent's name appended).
func TestAnacrolixWebSeed(t *testing.T) {
	fx := newFixture(t, false)
	id := idOf(fx.files["voice.wav"])
	a := do(t, "GET", fx.web.URL+"/p2p/"+string(id)+".torrent", nil)
	mi, err := metainfo.Load(bytes.NewReader(a.body))
	if err != nil {
		t.Fatal(err)
	}
	cfg := torrent.NewDefaultClientConfig()
	cfg.NoDHT, cfg.DisableUTP, cfg.DisableTCP = true, true, true
	cfg.NoDefaultPortForwarding, cfg.DisablePEX, cfg.DisableWebtorrent = true, true, true
	cfg.DisableTrackers = true // the web seed alone
	out := t.TempDir()
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{ClientBaseDir: out, PieceCompletion: storage.NewMapPieceCompletion()})
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tor, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.DownloadAll()
	select {
	case <-tor.Complete().On():
	case <-time.After(30 * time.Second):
		t.Fatalf("not complete after 30 s: %d of %d bytes", tor.BytesCompleted(), tor.Length())
	}
	got, err := os.ReadFile(filepath.Join(out, tor.Name()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fx.files["voice.wav"]) {
		t.Fatal("downloaded file differs")
	}
	s := fx.o.Stats()
	// (One piece: the library asks for the whole file, with or without a
	// Range header; TestWebFiles covers the Range answers.)
	if s.Requests["web GET /files/{name}"] == 0 || s.BytesServed < int64(len(got)) {
		t.Errorf("stats %+v: want file requests covering the file", s)
	}
}
