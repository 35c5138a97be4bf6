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

	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

// anacrolixClient is a torrent client on loopback with everything but TCP,
// trackers and web seeds off, storing under dir.
func anacrolixClient(t *testing.T, dir string, seed bool) *torrent.Client {
	t.Helper()
	cfg := torrent.NewDefaultClientConfig()
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.ListenPort = 0
	cfg.NoDHT, cfg.DisableUTP, cfg.DisableIPv6 = true, true, true
	cfg.NoDefaultPortForwarding, cfg.DisablePEX, cfg.DisableWebtorrent = true, true, true
	cfg.Seed = seed
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{ClientBaseDir: dir, PieceCompletion: storage.NewMapPieceCompletion()})
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestAnacrolixSwarm: a seeder and a leecher find each other through the
// file-info server's tracker, and the leecher downloads from the seeder (its
// metainfo without the url-list: TestAnacrolixWebSeed covers the web seed).
func TestAnacrolixSwarm(t *testing.T) {
	fx := newFixture(t, false)
	file := mediatest.PCMWAV(8000, 1, 40*time.Second) // 640 kB: 10 pieces
	path := filepath.Join(fx.dir, "long.wav")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := fx.o.Publish(path, true)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Load(bytes.NewReader(fx.o.Torrent(rec.ID)))
	if err != nil {
		t.Fatal(err)
	}

	seedDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(seedDir, rec.Name), file, 0o644); err != nil {
		t.Fatal(err)
	}
	seeder := anacrolixClient(t, seedDir, true)
	st, err := seeder.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	st.DownloadAll()
	waitComplete(t, st, "seeder's check of its copy")
	ih := metainfo.NewHashFromHex(rec.InfoHash)
	waitFor(t, "the seeder's announce", func() bool { return len(fx.o.Tracker().Peers(ih)) == 1 })

	leechDir := t.TempDir()
	leecher := anacrolixClient(t, leechDir, false)
	peersOnly := *mi
	peersOnly.UrlList = nil
	lt, err := leecher.AddTorrent(&peersOnly)
	if err != nil {
		t.Fatal(err)
	}
	lt.DownloadAll()
	waitComplete(t, lt, "download")
	got, err := os.ReadFile(filepath.Join(leechDir, rec.Name))
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("downloaded file differs (%v)", err)
	}
	waitFor(t, "the leecher's announce", func() bool { return len(fx.o.Tracker().Peers(ih)) == 2 })
	if s := lt.Stats(); s.PeerConns.BytesReadUsefulData.Int64() != int64(len(file)) {
		t.Errorf("%d bytes from peers, want %d", s.PeerConns.BytesReadUsefulData.Int64(), len(file))
	}
	if n := fx.o.Stats().Requests["info GET /announce"]; n < 2 {
		t.Errorf("%d announces, want at least 2", n)
	}
}

func waitComplete(t *testing.T, tor *torrent.Torrent, what string) {
	t.Helper()
	select {
	case <-tor.Complete().On():
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: not complete after 60 s (%d of %d bytes)", what, tor.BytesCompleted(), tor.Length())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
