package main

// Kernel-peer tests of the p2sp commands: origin, three peers and a client
// as separate `mediastack p2sp` processes, each in a network namespace on a
// bridge with its egress capped by tc tbf (p2sp/p2spnetns); aria2c and
// transmission-cli as the real clients nobody here wrote; curl for the
// report endpoint.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
	"github.com/mediastack/mediastack/p2sp/p2spnetns"
)

// p2spRate caps every node's egress: 24 Mbit/s, 3 MB/s.
const p2spRate = 24_000_000

// p2spFileSize is the published file's size: a few seconds per source.
const p2spFileSize = 6 << 20

// newP2SPLAN builds the namespaces and starts the origin publishing one
// WAV file of p2spFileSize; it returns the LAN, the file and its id.
func newP2SPLAN(t *testing.T, v6, tapClient bool) (*p2spnetns.LAN, []byte, p2sp.FileID) {
	return newP2SPLANSize(t, v6, tapClient, p2spFileSize)
}

func newP2SPLANSize(t *testing.T, v6, tapClient bool, size int) (*p2spnetns.LAN, []byte, p2sp.FileID) {
	t.Helper()
	netnstest.Require(t)
	netnstest.RequireTools(t, "tc", "curl")
	if tapClient {
		netnstest.RequireTUN(t)
	}
	file := mediatest.PCMWAV(48000, 2, time.Duration(size)*time.Second/(48000*4))
	id, _, _ := p2sp.IDOf(bytes.NewReader(file))
	lan, err := p2spnetns.New(p2spnetns.Options{Binary: binary(t), Rate: p2spRate, V6: v6, TAPClient: tapClient,
		Files: map[string][]byte{"voice.wav": file}, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lan.Close(); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	return lan, file, id
}

func mustFetch(t *testing.T, lan *p2spnetns.LAN, node string, id p2sp.FileID, file []byte) p2spnetns.Result {
	t.Helper()
	res, err := lan.Fetch(node, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(res.Path); err != nil || !bytes.Equal(got, file) {
		t.Errorf("%s's cached file %s: %d bytes, %v; want the published %d", node, res.Path, len(got), err, len(file))
	}
	return res
}

// TestP2SPKernel: origin, three peers and a client as processes on the
// host's stack, over IPv4 and IPv6, and with the client on mediastack's
// stack over a TAP bridged in its namespace (the cap on its veth).
func TestP2SPKernel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v6, tap bool
	}{
		{"IPv4", false, false},
		{"IPv6", true, false},
		{"IPv4 client on mediastack over a TAP", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lan, file, id := newP2SPLAN(t, tc.v6, tc.tap)
			if err := lan.SeedPeers(id); err != nil {
				t.Fatal(err)
			}
			node := p2spnetns.Client
			if tc.tap {
				node = p2spnetns.TAPClient
			}
			res := mustFetch(t, lan, node, id, file)
			if err := lan.CheckSources(res); err != nil {
				t.Error(err)
			}
			t.Logf("%s in %v: %v", res.Method, res.Elapsed, res.Sources)
		})
	}
}

// TestP2SPAria2c: aria2c (Debian's aria2) downloads a published file using
// our origin's web seed and our peers' swarm together; the bytes are
// counted where they leave the origin and each peer.
func TestP2SPAria2c(t *testing.T) {
	netnstest.RequireTools(t, "aria2c")
	// Long enough (8 s from the origin alone at its cap) that aria2c's
	// start on a busy machine, tracker announce and peer handshakes included,
	// is a small part of the download, as it is for a real voice clip or video.
	lan, file, id := newP2SPLANSize(t, false, false, 24<<20)
	if err := lan.SeedPeers(id); err != nil {
		t.Fatal(err)
	}
	nodes := []string{p2spnetns.Origin}
	for i := range p2spnetns.Peers {
		nodes = append(nodes, p2spnetns.Peer(i))
	}
	before := map[string]int64{}
	for _, n := range nodes {
		b, err := lan.TxBytes(n)
		if err != nil {
			t.Fatal(err)
		}
		before[n] = b
	}
	out := t.TempDir()
	res, err := lan.Nodes[p2spnetns.Client].Exec("aria2c", "--dir="+out, "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
		"--enable-peer-exchange=false", "--seed-time=0", "--follow-torrent=mem", "--listen-port=6881",
		"--interface="+lan.Addr(p2spnetns.HostClient).String(), "--summary-interval=0", "--console-log-level=warn",
		"--bt-tracker-connect-timeout=10", "--timeout=30", lan.WebURL()+"/p2p/"+string(id)+".torrent")
	if err != nil {
		t.Fatalf("aria2c: %v\n%s", err, res)
	}
	matches, _ := filepath.Glob(filepath.Join(out, string(id)+"*"))
	if len(matches) != 1 {
		t.Fatalf("aria2c left %v in its directory, want the one file", matches)
	}
	if got, err := os.ReadFile(matches[0]); err != nil || !bytes.Equal(got, file) {
		t.Errorf("aria2c's file: %d bytes, %v; want the published %d", len(got), err, len(file))
	}
	// Each source sent a real share: more than a tenth of an even split
	// among the four (announces and handshakes are a few kilobytes).
	share := int64(len(file)) / 4 / 10
	for _, n := range nodes {
		after, err := lan.TxBytes(n)
		if err != nil {
			t.Fatal(err)
		}
		if sent := after - before[n]; sent < share {
			t.Errorf("%s sent %d bytes during aria2c's download, want ≥ %d: both the web seed and the swarm used", n, sent, share)
		} else {
			t.Logf("%s sent %d bytes", n, sent)
		}
	}
}

// TestP2SPFromTransmission: our client downloads from a swarm that
// transmission-cli seeds (on the peers' addresses, never loopback:
// transmission drops 127/8), together with the origin's web seed. The file
// is larger than the other tests': transmission unchokes a new peer at its
// next rechoke, up to 10 s later.
func TestP2SPFromTransmission(t *testing.T) {
	netnstest.RequireTools(t, "transmission-cli")
	lan, file, id := newP2SPLANSize(t, false, false, 48<<20)
	peer1 := lan.Nodes[p2spnetns.Peer(0)]
	torrent := filepath.Join(t.TempDir(), "voice.torrent")
	if out, err := peer1.Exec("curl", "-sf", "-o", torrent, lan.WebURL()+"/p2p/"+string(id)+".torrent"); err != nil {
		t.Fatalf("curl the torrent: %v: %s", err, out)
	}
	var rec p2sp.Record
	out, err := peer1.Exec("curl", "-sf", lan.WebURL()+"/p2p/"+string(id))
	if err != nil || json.Unmarshal([]byte(out), &rec) != nil || rec.Name == "" {
		t.Fatalf("curl the record: %v: %s", err, out)
	}
	for i := range p2spnetns.Peers {
		node := p2spnetns.Peer(i)
		base := t.TempDir()
		data, conf := filepath.Join(base, "data"), filepath.Join(base, "conf")
		for _, d := range []string{data, conf} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(data, rec.Name), file, 0o644); err != nil {
			t.Fatal(err)
		}
		settings := fmt.Sprintf(`{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
 "port-forwarding-enabled": false, "peer-port": 51413, "bind-address-ipv4": %q,
 "speed-limit-up-enabled": false, "ratio-limit-enabled": false, "encryption": 1, "message-level": 2}`, lan.PeerAddr(i).String())
		if err := os.WriteFile(filepath.Join(conf, "settings.json"), []byte(settings), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := lan.Start(node, "transmission-cli", "-g", conf, "-w", data, "-M", "-p", "51413", torrent)
		if err != nil {
			t.Fatal(err)
		}
		netnstest.WaitFor(t, netnstest.StateTimeout, "transmission in "+node+" seeding", func() error {
			select {
			case <-p.Done():
				t.Fatalf("transmission-cli in %s exited: %v: %s", node, p.Err(), p.Output())
			default:
			}
			if !strings.Contains(p.Output(), "Seeding") {
				return netnstest.ErrNotYet
			}
			return nil
		})
	}
	if err := lan.WaitSwarm(id, p2spnetns.Peers); err != nil {
		t.Fatal(err)
	}
	res := mustFetch(t, lan, p2spnetns.Client, id, file)
	if err := lan.CheckSources(res); err != nil {
		t.Error(err)
	}
	t.Logf("%s in %v: %v", res.Method, res.Elapsed, res.Sources)
}

// TestP2SPReportEndpoint: curl gets the report endpoint's answers: garbage
// gets a JSON error; a report gets the file's status and a notice, and a
// damaged status shows in later records.
func TestP2SPReportEndpoint(t *testing.T) {
	lan, _, id := newP2SPLAN(t, true, false)
	client := lan.Nodes[p2spnetns.Client]
	post := func(body string) (int, string) {
		t.Helper()
		out, err := client.Exec("curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
			"--data-binary", body, lan.WebURL()+"/reports")
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		answer, code, _ := strings.Cut(strings.TrimSpace(out), "\n")
		c, _ := strconv.Atoi(strings.TrimSpace(code))
		return c, answer
	}
	code, body := post(`{"this is": "not a report"`)
	var e struct{ Error string }
	if code != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
		t.Errorf("garbage report: %d %s, want 400 with a JSON error", code, body)
	}
	report, _ := json.Marshal(p2sp.Report{ID: id, Stage: p2sp.StageSHA256, Detail: "the whole file did not match its id"})
	code, body = post(string(report))
	var answer p2sp.ReportAnswer
	if code != 200 || json.Unmarshal([]byte(body), &answer) != nil {
		t.Fatalf("report: %d %s, want 200 with an answer", code, body)
	}
	t.Logf("answer: %+v", answer)
	if answer.Notice == "" || (answer.Status != p2sp.StatusOK && answer.Status != p2sp.StatusDamaged) {
		t.Errorf("answer %+v: want a status and a notice to show", answer)
	}
	out, err := client.Exec("curl", "-sf", lan.WebURL()+"/p2p/"+string(id))
	var rec p2sp.Record
	if err != nil || json.Unmarshal([]byte(out), &rec) != nil || rec.Status != answer.Status {
		t.Errorf("record after the report: %v %s, want status %q", err, out, answer.Status)
	}
}
