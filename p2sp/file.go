package p2sp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// FileID names a published file: the lowercase hex SHA-256 of its bytes.
// It is stable across renames and republishing, and it is the whole-file
// checksum the client verifies against.
type FileID string

// ParseFileID checks that s is a file id.
func ParseFileID(s string) (FileID, error) {
	if len(s) != sha256.Size*2 {
		return "", fmt.Errorf("p2sp: file id %q: want %d hex digits", s, sha256.Size*2)
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("p2sp: file id %q: want lowercase hex", s)
		}
	}
	return FileID(s), nil
}

// IDOf reads r to its end and returns its file id.
func IDOf(r io.Reader) (FileID, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return FileID(hex.EncodeToString(h.Sum(nil))), n, nil
}

// Status is a published file's state at the file-info server.
type Status string

const (
	// StatusOK: published, no verified failure reported.
	StatusOK Status = "ok"
	// StatusDamaged: a client reported a failure the origin confirmed (or
	// could not rule out); clients show the record's Notice.
	StatusDamaged Status = "damaged"
)

// Record is what the file-info server holds of a published file. Its JSON
// form is the file-info server's answer.
type Record struct {
	ID          FileID        `json:"id"`
	Name        string        `json:"name"` // id + extension; the torrent's name and the web seed's path
	Size        int64         `json:"size"`
	MediaType   string        `json:"media_type"`            // e.g. audio/ogg, video/mp4, audio/wav
	Duration    time.Duration `json:"duration_ns,omitempty"` // 0 when unknown
	InfoHash    string        `json:"info_hash,omitempty"`   // hex v1 infohash; empty: no P2P info (HTTP only)
	PieceLength int64         `json:"piece_length,omitempty"`
	Status      Status        `json:"status"`
	Notice      string        `json:"notice,omitempty"` // what a client shows when Status is damaged
}

// Stage is where a client's verification or download failed.
type Stage string

const (
	StagePieces   Stage = "pieces"   // pieces failed their hash
	StageSHA256   Stage = "sha256"   // the whole file did not match its id
	StagePlayable Stage = "playable" // the container did not parse
	StageOrigin   Stage = "origin"   // the web seed served bytes that do not match the metainfo
	StageStalled  Stage = "stalled"  // no progress while bad pieces were counted
	StageStorage  Stage = "storage"  // the cache could not be written (a full disk)
)

// Report is a client's failure report, POSTed as JSON to the web server.
type Report struct {
	ID          FileID   `json:"id"`
	Stage       Stage    `json:"stage"`
	BadPieces   []int    `json:"bad_pieces,omitempty"`
	BannedPeers []string `json:"banned_peers,omitempty"` // IP addresses
	Detail      string   `json:"detail,omitempty"`
}

// ReportAnswer is the web server's answer to a Report: the file's status
// after it, and the notice the client shows its user.
type ReportAnswer struct {
	Status Status `json:"status"`
	Notice string `json:"notice"`
}

// MinPieceLength is the smallest piece the metainfo rule gives.
const MinPieceLength = 64 << 10

// PieceLength is the piece-length rule: anacrolix's choice (fewer than 2,048
// pieces), never below MinPieceLength. With a fixed rule, a file's infohash
// is a function of its bytes and name.
func PieceLength(size int64) int64 {
	return max(metainfo.ChoosePieceLength(size), MinPieceLength)
}

// BuildMetainfo hashes the file at path into a single-file v1 torrent named
// name, announcing to announce, with webSeed (a URL ending in "/", to which
// clients append the name; empty: none) as its url-list.
func BuildMetainfo(path, name, announce, webSeed string) (*metainfo.MetaInfo, error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("p2sp: torrent name %q: want a plain file name", name)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("p2sp: %s: not a regular file", path)
	}
	info := metainfo.Info{Name: name, Length: fi.Size(), PieceLength: PieceLength(fi.Size())}
	err = info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		return os.Open(filepath.Clean(path))
	})
	if err != nil {
		return nil, fmt.Errorf("p2sp: hashing %s: %w", path, err)
	}
	mi := &metainfo.MetaInfo{Announce: announce, CreatedBy: "mediastack p2sp"}
	if webSeed != "" {
		mi.UrlList = metainfo.UrlList{webSeed}
	}
	if mi.InfoBytes, err = bencode.Marshal(info); err != nil {
		return nil, err
	}
	return mi, nil
}
