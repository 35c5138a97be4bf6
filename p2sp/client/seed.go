package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/mediastack/mediastack/p2sp"
)

// SeedCache makes the Manager a peer (claims 5-6): every cached file with
// its metainfo beside it (<id>.torrent) is added to the BitTorrent client
// and seeded, within Options.UploadRate, after each of its pieces has been
// checked once. It returns how many files it seeds; files that fail the
// check are not seeded and are named in the error.
func (m *Manager) SeedCache(ctx context.Context) (int, error) {
	entries, err := os.ReadDir(m.opts.CacheDir)
	if err != nil {
		return 0, fmt.Errorf("p2sp client: cache: %w", err)
	}
	var errs []error
	n := 0
	for _, e := range entries {
		idStr, ok := strings.CutSuffix(e.Name(), torrentExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		id, err := p2sp.ParseFileID(idStr)
		if err != nil {
			continue
		}
		path, ok := m.cachedPath(id)
		if !ok {
			continue
		}
		mi, err := metainfo.LoadFromFile(filepath.Join(m.opts.CacheDir, e.Name()))
		if err == nil {
			err = m.seed(ctx, mi, path, false)
		}
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		n++
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("p2sp client: not seeding: %w", errors.Join(errs...))
	}
	return n, nil
}

// seed adds the cached file at path under mi and seeds it. verified says
// that every piece has just been checked (a fetch's own file); otherwise
// every piece is hashed now and the file is seeded only if all pass. The
// storage is the cache directory itself, without part files, and the
// torrent never downloads: nothing but a verified fetch writes the cache.
func (m *Manager) seed(ctx context.Context, mi *metainfo.MetaInfo, path string, verified bool) error {
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return err
	}
	if filepath.Join(m.opts.CacheDir, info.Name) != path || len(info.Files) != 0 {
		return fmt.Errorf("metainfo names %q, not %s", info.Name, filepath.Base(path))
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		return err
	}
	pc := storage.NewMapPieceCompletion()
	if verified {
		for i := range info.NumPieces() {
			if err := pc.Set(metainfo.PieceKey{InfoHash: spec.InfoHash, Index: i}, g.Some(true)); err != nil {
				return err
			}
		}
	}
	spec.Storage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   m.opts.CacheDir,
		PieceCompletion: pc,
		UsePartFiles:    g.Some(false), // never rename a cached file
		DisableMmap:     true,          // a cached file may be replaced under us
	})
	spec.DisallowDataDownload = true
	spec.DisableInitialPieceCheck = true
	t, isNew, err := m.cl.AddTorrentSpec(spec)
	if err != nil {
		return err
	}
	if !isNew {
		return nil // seeding already
	}
	if !verified {
		if err := t.VerifyDataContext(ctx); err != nil {
			t.Drop()
			return err
		}
		if err := settled(ctx, t); err != nil {
			t.Drop()
			return err
		}
		if !t.Complete().Bool() {
			t.Drop()
			return fmt.Errorf("%d of %d bytes pass their piece hashes", t.BytesCompleted(), t.Length())
		}
	}
	id := p2sp.FileID(strings.TrimSuffix(info.Name, filepath.Ext(info.Name)))
	m.mu.Lock()
	m.seeding[id] = t
	m.ids[spec.InfoHash] = id
	m.mu.Unlock()
	m.log.Info("p2sp client: seeding", "name", info.Name, "infohash", spec.InfoHash.HexString())
	return nil
}

// settled waits until no piece of t is being hashed or marked: a piece's
// verification returns before its completion is stored.
func settled(ctx context.Context, t *torrent.Torrent) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for {
		busy := false
		for _, run := range t.PieceStateRuns() {
			busy = busy || run.Hashing || run.QueuedForHash || run.Marking || !run.Ok
		}
		if !busy {
			return nil
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("piece checks: %w", ctx.Err())
		}
	}
}

// errKeptInSwarm cancels a "stopped" announce (keepInSwarm).
var errKeptInSwarm = errors.New("p2sp client: not leaving the swarm: the file is seeded on")

// keepInSwarm is the tracker requests' director. A fetched file changes
// torrents: the fetch's torrent is dropped when the download completes and,
// once the file is verified and cached, a new torrent of the same infohash
// seeds it. The library keeps one announce state per infohash and tracker:
// if it sends the dropped torrent's "stopped" announce, the tracker forgets
// the peer, and the seeding torrent, inheriting that state, does not
// announce again until the interval has passed (a minute or more out of
// the swarm). So a "stopped" announce of an infohash whose fetch is still
// running waits for its verdict, and is cancelled when the file is seeded
// on; every other request goes as it is.
func (m *Manager) keepInSwarm(req *http.Request) error {
	q := req.URL.Query()
	if q.Get("event") != "stopped" {
		return nil
	}
	ih := q.Get("info_hash")
	if len(ih) != len(metainfo.Hash{}) {
		return nil
	}
	m.mu.Lock()
	id, known := m.ids[metainfo.Hash([]byte(ih))]
	f := m.inflight[id]
	closed := m.closed
	m.mu.Unlock()
	if !known || closed {
		return nil
	}
	if f != nil {
		select {
		case <-f.done:
		case <-req.Context().Done():
			return req.Context().Err()
		case <-m.life.Done():
			return nil
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.seeding[id] == nil {
		return nil
	}
	return errKeptInSwarm
}
