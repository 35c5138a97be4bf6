package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/p2sp/p2spnetns"
)

// TestP2SPFetchPlaysWhileDownloading: `p2sp fetch --play rtp://…` in the
// client's namespace sends the WAV as RTP while it downloads: tshark in
// peer1's namespace (the destination) captures the first RTP packet before
// the fetch prints its result (the done line, --json), and the file is
// cached, verified.
func TestP2SPFetchPlaysWhileDownloading(t *testing.T) {
	netnstest.RequireTools(t, "tshark")
	lan, file, id := newP2SPLAN(t, false, false)
	dest := lan.Nodes[p2spnetns.Peer(0)]
	capture, err := dest.Start("tshark", "-l", "-n", "-i", netns.NodeDevice, "-f", "udp dst port 5004", "-c", "1",
		"-T", "fields", "-e", "frame.time_epoch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(capture.Kill)
	netnstest.WaitFor(t, netnstest.StateTimeout, "tshark capturing", func() error {
		if !strings.Contains(capture.Output(), "Capturing on") {
			return netnstest.ErrNotYet
		}
		return nil
	})
	args := append([]string{binary(t), "p2sp", "fetch", string(id), "--json", "--progress=false",
		"--play", "rtp://" + lan.PeerAddr(0).String() + ":5004"}, lan.ManagerArgs(p2spnetns.Client)...)
	start := time.Now()
	fetch, err := lan.Start(p2spnetns.Client, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fetch.Kill)
	// The done line: the JSON result, printed when the file is verified
	// (the playback of its 35 s goes on).
	var doneAt time.Time
	netnstest.WaitFor(t, time.Minute, "the fetch's result", func() error {
		select {
		case <-fetch.Done():
			t.Fatalf("the fetch exited before its result: %v: %s", fetch.Err(), fetch.Output())
		default:
		}
		if !strings.Contains(fetch.Output(), `"path":`) {
			return netnstest.ErrNotYet
		}
		doneAt = time.Now()
		return nil
	})
	out, err := capture.Wait(10 * time.Second)
	if err != nil {
		t.Fatalf("tshark captured no RTP packet: %v: %s", err, out)
	}
	var first time.Time
	for _, line := range strings.Split(out, "\n") {
		if sec, err := strconv.ParseFloat(strings.TrimSpace(line), 64); err == nil {
			first = time.Unix(0, int64(sec*1e9))
		}
	}
	if first.IsZero() {
		t.Fatalf("tshark's output has no capture time: %s", out)
	}
	t.Logf("first RTP packet at the destination %v after the start, the fetch's result %v after", first.Sub(start).Round(time.Millisecond), doneAt.Sub(start).Round(time.Millisecond))
	if !first.Before(doneAt) {
		t.Errorf("the first RTP packet (%v) came after the fetch's result (%v): the playback waited for the download", first.Sub(start), doneAt.Sub(start))
	}
	// The rest of the playback is not this test's.
	fetch.Kill()
	cache := lan.ManagerArgs(p2spnetns.Client)[3] // --origin URL --cache DIR
	matches, _ := filepath.Glob(filepath.Join(cache, string(id)+".wav"))
	if len(matches) != 1 {
		t.Fatalf("the cache holds %v, want the file", matches)
	}
	if got, err := os.ReadFile(matches[0]); err != nil || !bytes.Equal(got, file) {
		t.Errorf("the cached file: %d bytes, %v; want the published %d", len(got), err, len(file))
	}
}
