package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/mediastack/mediastack/p2sp"
)

// fetchP2SP is step 3 with P2P info: the web server as a BEP 19 web seed
// (the metainfo's url-list) and the tracker's peers at once, through the
// library's one piece picker, which checks every piece against its hash.
// The watchdog ends it with a report when the web seed's own bytes fail a
// piece (stage origin) or when nothing progresses for StallTimeout while bad
// pieces are being counted (stage stalled).
func (m *Manager) fetchP2SP(ctx context.Context, id p2sp.FileID, rec p2sp.Record, mi *metainfo.MetaInfo, progress func(Progress), f *flight) (download, error) {
	t, w, err := m.addFetch(id, mi)
	if err != nil {
		return download{}, err
	}
	dropped := false
	drop := func() {
		if !dropped {
			dropped = true
			t.Drop()
			m.mu.Lock()
			delete(m.watches, t)
			m.mu.Unlock()
		}
	}
	defer drop()

	sub := t.SubscribePieceStateChanges()
	defer sub.Close()
	writeErr := make(chan error, 1)
	var closedWrites atomic.Int64
	t.SetOnWriteChunkError(func(err error) {
		// A write racing the storage's close of its cached handle fails
		// with ErrClosed, and the library asks for the chunk again.
		// Anything else (a full disk) ends the fetch.
		if errors.Is(err, fs.ErrClosed) && closedWrites.Add(1) < maxClosedWrites {
			return
		}
		select {
		case writeErr <- err:
		default:
		}
	})
	t.DownloadAll()
	f.setReady(t, nil, rec) // Streams may read it now

	pr := &progressMeter{method: MethodP2SP, size: rec.Size, report: progress}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	fail := func(stage p2sp.Stage, detail string) (download, error) {
		dl := w.download(m, MethodP2SP)
		drop()
		return download{}, m.fail(ctx, dl.report(id, stage, detail))
	}
	for done := false; !done; {
		select {
		case <-t.Complete().On():
			done = true
		case ch, ok := <-sub.Values:
			if !ok {
				return download{}, errors.New("p2sp client: the torrent closed")
			}
			if piece, bad := w.pieceState(ch); bad {
				return fail(p2sp.StageOrigin, fmt.Sprintf("piece %d, all of it from the web server, does not match the metainfo", piece))
			}
		case err := <-writeErr:
			drop()
			return download{}, m.fail(ctx, p2sp.Report{ID: id, Stage: p2sp.StageStorage, Detail: "writing the download: " + err.Error()})
		case <-tick.C:
			// Not under w.mu: the library calls receivedUsefulData with its
			// lock held, and BytesCompleted takes that lock.
			have := t.BytesCompleted()
			w.mu.Lock()
			pr.done, pr.badPieces = have, len(w.bad)
			pr.sources = maps.Clone(w.sources)
			idle, bad := time.Since(w.lastProgress), len(w.bad)
			w.mu.Unlock()
			pr.tick(true)
			if idle > m.opts.StallTimeout {
				if bad > 0 {
					return fail(p2sp.StageStalled, fmt.Sprintf("no progress for %v with %d bad pieces", idle.Round(time.Second), bad))
				}
				// A web seed that cannot serve the rest (the library retries
				// it each minute) may have a copy that is not the record's.
				if detail := m.checkWebSeed(ctx, rec); detail != "" {
					return fail(p2sp.StageOrigin, detail)
				}
				return download{}, fmt.Errorf("p2sp client: %s: no source delivered data for %v", id, idle.Round(time.Second))
			}
		case <-t.Closed():
			return download{}, errClosed
		case <-ctx.Done():
			return download{}, ctx.Err()
		}
	}
	dl := w.download(m, MethodP2SP)
	dl.res.Record = rec
	pr.finish(rec.Size)
	drop() // closes the storage: the file is whole in the temporary directory
	dl.path = filepath.Join(m.tmpDir(id), rec.Name)
	if _, err := os.Stat(dl.path); err != nil {
		return download{}, m.fail(ctx, dl.report(id, p2sp.StageStorage, err.Error()))
	}
	f.wholePath = dl.path
	close(f.whole)
	return dl, nil
}

// maxClosedWrites bounds the chunk writes that may fail on a handle the
// storage closed under them before the fetch gives up.
const maxClosedWrites = 1000

// addFetch adds id's torrent with its storage in the temporary directory
// and registers its watch for the callbacks.
func (m *Manager) addFetch(id p2sp.FileID, mi *metainfo.MetaInfo) (*torrent.Torrent, *watch, error) {
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		return nil, nil, err
	}
	if old, ok := m.cl.Torrent(spec.InfoHash); ok {
		// Seeding a file that has since left the cache: fetch it afresh.
		old.Drop()
		m.mu.Lock()
		delete(m.seeding, id)
		m.mu.Unlock()
	}
	// Every piece is known to be missing: no initial check hashes a piece
	// the web seed is writing (it would fail, and look like a bad piece).
	pc := storage.NewMapPieceCompletion()
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, nil, err
	}
	for i := range info.NumPieces() {
		if err := pc.Set(metainfo.PieceKey{InfoHash: spec.InfoHash, Index: i}, g.Some(false)); err != nil {
			return nil, nil, err
		}
	}
	spec.Storage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   m.tmpDir(id),
		PieceCompletion: pc,
		// Written files, not mappings: a full disk must be a write error,
		// not a SIGBUS.
		DisableMmap: true,
		// No part files: the temporary directory already keeps the data
		// out of the cache, and promoting a part file closes the storage's
		// write handle under writes and hashes still using it (a data race
		// in v1.62.0's classic file IO).
		UsePartFiles: g.Some(false),
	})
	t, _, err := m.cl.AddTorrentSpec(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("p2sp client: adding the torrent: %w", err)
	}
	w := &watch{
		pieceLen:     info.PieceLength,
		length:       info.Length,
		chunks:       map[int]map[int64]chunk{},
		marking:      map[int]bool{},
		sources:      map[string]int64{},
		peers:        map[netip.Addr]bool{},
		lastProgress: time.Now(),
	}
	m.mu.Lock()
	m.watches[t] = w
	m.ids[spec.InfoHash] = id
	m.mu.Unlock()
	return t, w, nil
}

// watch is one fetch's accounting: useful bytes per source (from
// Callbacks.ReceivedUsefulData) and, per piece being downloaded, which
// source sent each chunk, so that a piece failing its hash is attributed.
type watch struct {
	pieceLen, length int64

	mu           sync.Mutex
	chunks       map[int]map[int64]chunk // piece -> chunk offset -> source
	marking      map[int]bool            // pieces seen being marked after a hash
	sources      map[string]int64
	peers        map[netip.Addr]bool
	bad          []int // pieces that failed their hash (a piece may fail twice)
	lastProgress time.Time
}

type chunk struct {
	source string
	n      int64
}

// receivedUsefulData is the library's callback for every useful chunk from
// a peer or a web seed. The client lock is held: count, never block.
func (m *Manager) receivedUsefulData(ev torrent.ReceivedUsefulDataEvent) {
	m.mu.Lock()
	w := m.watches[ev.Peer.Torrent()]
	m.mu.Unlock()
	if w == nil || ev.Message == nil {
		return
	}
	source := WebSource
	var addr netip.Addr
	if ev.Peer.Network != "http" && ev.Peer.RemoteAddr != nil {
		ap, err := netip.ParseAddrPort(ev.Peer.RemoteAddr.String())
		if err != nil {
			return
		}
		addr = ap.Addr().Unmap()
		source = addr.String()
	}
	w.chunk(int(ev.Message.Index), int64(ev.Message.Begin), int64(len(ev.Message.Piece)), source, addr)
}

func (w *watch) chunk(piece int, begin, n int64, source string, addr netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sources[source] += n
	if addr.IsValid() {
		w.peers[addr] = true
	}
	w.lastProgress = time.Now()
	got := w.chunks[piece]
	if _, again := got[begin]; again {
		// A chunk wanted again: the piece failed before we saw its state.
		w.failedLocked(piece)
		got = nil
	}
	if got == nil {
		got = map[int64]chunk{}
		w.chunks[piece] = got
	}
	got[begin] = chunk{source, n}
}

// pieceState follows a piece through its hash: Marking is published after
// every hash; the state after it is Complete (passed) or not (failed). It
// returns true for a failed piece whose every chunk came from the web seed.
func (w *watch) pieceState(ch torrent.PieceStateChange) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch.Marking {
		w.marking[ch.Index] = true
		return ch.Index, false
	}
	if !w.marking[ch.Index] || ch.Hashing || ch.QueuedForHash {
		return ch.Index, false
	}
	delete(w.marking, ch.Index)
	if ch.Complete {
		delete(w.chunks, ch.Index)
		w.lastProgress = time.Now()
		return ch.Index, false
	}
	return ch.Index, w.failedLocked(ch.Index)
}

// failedLocked counts a failed piece if all of it had arrived (an initial
// check of missing data is no failure) and says whether the web seed alone
// sent it.
func (w *watch) failedLocked(piece int) (webOnly bool) {
	got := w.chunks[piece]
	delete(w.chunks, piece)
	var n int64
	webOnly = len(got) > 0
	for _, c := range got {
		n += c.n
		webOnly = webOnly && c.source == WebSource
	}
	if n < w.pieceSize(piece) {
		return false
	}
	w.bad = append(w.bad, piece)
	return webOnly
}

func (w *watch) pieceSize(piece int) int64 {
	return min(w.pieceLen, w.length-int64(piece)*w.pieceLen)
}

// download is the accounting so far as a download: sources, bad pieces and
// the peers the client banned among those this fetch talked to.
func (w *watch) download(m *Manager, method Method) download {
	banned := map[netip.Addr]bool{}
	for _, s := range m.cl.BadPeerIPs() {
		if a, err := netip.ParseAddr(s); err == nil {
			banned[a.Unmap()] = true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	dl := download{bad: slices.Clone(w.bad)}
	dl.res.Method = method
	dl.res.Sources = maps.Clone(w.sources)
	dl.res.BadPieces = len(w.bad)
	for a := range w.peers {
		if banned[a] {
			dl.res.Banned = append(dl.res.Banned, a)
		}
	}
	slices.SortFunc(dl.res.Banned, netip.Addr.Compare)
	return dl
}

// checkWebSeed asks the web server for the size of its copy of rec's file
// and returns what is wrong with it ("" when its size is the record's or
// the server cannot be asked).
func (m *Manager) checkWebSeed(ctx context.Context, rec p2sp.Record) string {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, m.opts.Origin+"/files/"+rec.Name, nil)
	if err != nil {
		return ""
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "the web server does not have the file"
	case resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 && resp.ContentLength != rec.Size:
		return fmt.Sprintf("the web server's copy is %d bytes, the record's %d", resp.ContentLength, rec.Size)
	}
	return ""
}
