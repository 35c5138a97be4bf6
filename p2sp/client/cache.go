package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mediastack/mediastack/p2sp"
)

// The cache layout: <cache>/<id><ext> (verified data), <cache>/<id>.torrent
// (its metainfo, when it had P2P info), and downloads in progress under
// <cache>/.tmp/<id>/ only, so that nothing half-written is ever in the cache.
const (
	tmpDirName     = ".tmp"
	torrentExt     = ".torrent"
	partialSuffix  = ".part" // the library's part files, and ours
	cacheDirPerm   = 0o755
	cacheFilePerm  = 0o644
	maxMetainfoLen = 4 << 20
)

// cachedPath returns the cached file of id, if there is one: <id> or
// <id><ext>, a regular file.
func (m *Manager) cachedPath(id p2sp.FileID) (string, bool) {
	entries, err := os.ReadDir(m.opts.CacheDir)
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, string(id))
		if !ok || rest == torrentExt || !e.Type().IsRegular() {
			continue
		}
		if rest == "" || strings.HasPrefix(rest, ".") && !strings.ContainsAny(rest[1:], "./") {
			return filepath.Join(m.opts.CacheDir, name), true
		}
	}
	return "", false
}

// tmpDir is where id's download lives until it is verified.
func (m *Manager) tmpDir(id p2sp.FileID) string {
	return filepath.Join(m.opts.CacheDir, tmpDirName, string(id))
}

// commit moves the verified file at src into the cache as name, with its
// metainfo (nil: none) as <id>.torrent: each is fsynced, renamed (on the
// same file system) and the directory fsynced, the metainfo first so that
// a cached file with P2P info always has it beside it.
func (m *Manager) commit(id p2sp.FileID, src, name string, metainfo []byte) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || !strings.HasPrefix(name, string(id)) {
		return "", fmt.Errorf("cache: file name %q: want the id and an extension", name)
	}
	if metainfo != nil {
		tmp := filepath.Join(filepath.Dir(src), string(id)+torrentExt+partialSuffix)
		if err := writeFileSync(tmp, metainfo); err != nil {
			return "", fmt.Errorf("cache: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(m.opts.CacheDir, string(id)+torrentExt)); err != nil {
			return "", fmt.Errorf("cache: %w", err)
		}
	}
	if err := fsyncPath(src); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	dst := filepath.Join(m.opts.CacheDir, name)
	if err := os.Rename(src, dst); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := fsyncPath(m.opts.CacheDir); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	return dst, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, cacheFilePerm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fsyncPath fsyncs a file or a directory.
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTmp removes id's temporary download; a missing one is fine.
func (m *Manager) removeTmp(id p2sp.FileID) {
	if err := os.RemoveAll(m.tmpDir(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("p2sp client: removing a temporary download", "id", id, "err", err)
	}
}
