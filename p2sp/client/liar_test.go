package client

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/mediastack/mediastack/p2sp"
)

// newLyingSeeder is a plain library client at addr that seeds bad (a
// corrupted copy of id's file) as if it were complete: its piece
// completion claims every piece is verified. It returns addr.
func newLyingSeeder(t *testing.T, addr netip.Addr, o *testOrigin, id p2sp.FileID, bad []byte) netip.Addr {
	t.Helper()
	mi, err := metainfo.Load(bytes.NewReader(o.metainfo(id)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, info.Name), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	net := p2sp.HostNetwork(addr)
	cfg := torrent.NewDefaultClientConfig()
	cfg.DisableTCP, cfg.DisableUTP, cfg.NoDHT = true, true, true
	cfg.NoDefaultPortForwarding, cfg.DisablePEX, cfg.DisableWebtorrent = true, true, true
	cfg.Seed = true
	cfg.DataDir = dir
	cfg.DisableWebseeds = true
	cfg.HTTPDialContext, cfg.TrackerDialContext = net.DialContext, net.DialContext
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir: dir, PieceCompletion: lyingCompletion{storage.NewMapPieceCompletion()}, DisableMmap: true})
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen(netip.AddrPortFrom(addr, 0))
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		<-cl.Closed()
		l.Close()
	})
	cl.AddListener(l)
	cl.AddDialer(torrent.NetworkDialer{Network: "tcp", Dialer: net})
	tt, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	<-tt.GotInfo()
	if !tt.Complete().Bool() {
		t.Fatal("the lying seeder does not claim completion")
	}
	return addr
}

// lyingCompletion claims every piece is complete and verified.
type lyingCompletion struct{ storage.PieceCompletion }

func (lyingCompletion) Get(metainfo.PieceKey) (storage.Completion, error) {
	return storage.Completion{Ok: true, Complete: true}, nil
}
