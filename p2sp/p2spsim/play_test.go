package p2spsim_test

// Playback while downloading (issue 15's playback component, 130): the
// client opens the file as a Stream and plays it as its fetch downloads
// it; the first RTP packet reaches its destination (another node's UDP
// socket across the simulated LAN), or the first bytes reach a player
// stand-in, before the fetch's result; a bad origin stops the playback.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
	"github.com/mediastack/mediastack/p2sp/media"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
	"github.com/mediastack/mediastack/p2sp/origin"
	"github.com/mediastack/mediastack/p2sp/playback"
)

// A Stream is what playback plays while downloading.
var _ playback.Source = (*client.Stream)(nil)

// rtpPort is the destination's and the client's RTP port.
const rtpPort = 5004

// udpSender sends through a UDP socket on a node's stack.
type udpSender struct{ c *gonet.UDPConn }

func (s udpSender) WriteToUDPAddrPort(b []byte, a netip.AddrPort) (int, error) {
	return s.c.WriteTo(b, net.UDPAddrFromAddrPort(a))
}

// destination is an RTP receiver on the origin's node: it counts the
// packets and notes when the first arrived.
type destination struct {
	addr  netip.AddrPort
	c     *gonet.UDPConn
	n     atomic.Int64
	first chan struct{}
	ended chan struct{}
}

func (w *world) destination(t *testing.T) *destination {
	t.Helper()
	node := w.lan.Node("origin")
	d := &destination{addr: node.AddrPort(0, rtpPort, w.v6), first: make(chan struct{}), ended: make(chan struct{})}
	c, err := node.Stack.ListenUDP(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	d.c = c
	go func() {
		defer close(d.ended)
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			if d.n.Add(1) == 1 {
				close(d.first)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-d.ended })
	return d
}

// sender opens the client's RTP socket.
func (w *world) sender(t *testing.T) playback.RTPOptions {
	t.Helper()
	c, err := w.lan.Node("client").Stack.ListenUDP(w.lan.Node("client").AddrPort(0, rtpPort, w.v6))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return playback.RTPOptions{Sender: udpSender{c}}
}

// route is a way a file comes: with P2P info (the web seed and peers), or
// over HTTP only.
type route struct {
	name   string
	p2p    bool
	method client.Method
}

var routes = []route{{"P2SP", true, client.MethodP2SP}, {"HTTP only", false, client.MethodHTTP}}

// origin is the origin's options that publish files the route's way.
func (r route) origin() origin.Options {
	if r.p2p {
		return origin.Options{}
	}
	return origin.Options{NoP2P: func(string) bool { return true }}
}

// open opens id on m, within fetchTimeout.
func open(t *testing.T, m *client.Manager, id p2sp.FileID) (context.Context, *client.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	t.Cleanup(cancel)
	s, err := m.Open(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return ctx, s
}

// verdict is PlayWhileVerifying's verify: it waits for the stream's fetch,
// notes when its result came, and (ended, when not nil) ends the playback
// once the file is verified: the test has what it needs.
type verdict struct {
	s     *client.Stream
	res   client.Result
	at    time.Time
	ended context.CancelFunc
}

func (v *verdict) verify(ctx context.Context) error {
	res, err := v.s.Wait(ctx)
	v.res, v.at = res, time.Now()
	if err == nil && v.ended != nil {
		v.ended()
	}
	return err
}

// TestPlayWhileDownloadingRTP: a WAV sent as RTP while it downloads, over
// P2SP (web seed and a peer) and over HTTP only: the first packet arrives
// at the destination before the fetch's result, and the file is cached.
func TestPlayWhileDownloadingRTP(t *testing.T) {
	for _, tc := range routes {
		t.Run(tc.name, func(t *testing.T) {
			file := wav(4 << 20) // 2 s at the cap, 22 s of audio
			id := idOf(file)
			peers := 0
			if tc.p2p {
				peers = 1
			}
			w := newWorld(t, false, map[string][]byte{"voice.wav": file}, tc.origin(), peers)
			if tc.p2p {
				w.seeders(t, id, file, ".wav", 1)
			}
			dest := w.destination(t)
			o := w.sender(t)
			m := w.manager(t, "client", client.Options{})
			start := time.Now()
			ctx, s := open(t, m, id)
			var firstAt time.Time
			go func() {
				select {
				case <-dest.first:
					firstAt = time.Now()
				case <-ctx.Done():
				}
			}()
			playCtx, endPlay := context.WithCancel(ctx)
			v := &verdict{s: s, ended: endPlay}
			st, err := playback.Target{RTP: dest.addr}.PlayWhileVerifying(playCtx, s, o, v.verify)
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("PlayWhileVerifying: %v", err)
			}
			select {
			case <-dest.first:
			case <-time.After(5 * time.Second):
				t.Fatalf("no RTP packet at the destination (%d sent)", st.Packets)
			}
			if firstAt.IsZero() || !firstAt.Before(v.at) {
				t.Errorf("the first RTP packet arrived %v after the start, the fetch's result %v: not before it", firstAt.Sub(start), v.at.Sub(start))
			}
			if v.res.Method != tc.method {
				t.Errorf("method %s, want %s", v.res.Method, tc.method)
			}
			checkCached(t, v.res, id)
			t.Logf("%s: first RTP packet at the destination after %v, the fetch's result after %v; %d packets sent",
				tc.name, firstAt.Sub(start).Round(time.Millisecond), v.at.Sub(start).Round(time.Millisecond), st.Packets)
		})
	}
}

// firstBytes is a player stand-in's stdout: it notes when its first bytes
// came and keeps them all.
type firstBytes struct {
	mu  sync.Mutex
	buf bytes.Buffer
	at  time.Time
}

func (f *firstBytes) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at.IsZero() && len(p) > 0 {
		f.at = time.Now()
	}
	return f.buf.Write(p)
}

// TestPlayWhileDownloadingMP4: an MP4 whose index (moov) is at its end,
// over P2SP and over HTTP only: Open fetches the index first, so a player
// reads it before the fetch's result, and a player command (`cat`, the
// stand-in) gets the first bytes on its stdin before the result too.
func TestPlayWhileDownloadingMP4(t *testing.T) {
	for _, tc := range routes {
		t.Run(tc.name, func(t *testing.T) {
			file := mediatest.MP4("soun", 400*time.Second, 40000, true) // 4 MB, moov last
			id := idOf(file)
			w := newWorld(t, false, map[string][]byte{"clip.mp4": file}, tc.origin(), 0)
			// mediatest's MP4 has the structure of one, not decodable samples.
			m := w.manager(t, "client", client.Options{CheckPlayable: func(ctx context.Context, path string) error {
				return media.CheckPlayable(ctx, path)
			}})
			start := time.Now()
			ctx, s := open(t, m, id)
			moovAt := int64(bytes.LastIndex(file, []byte("moov")) - 4)
			moov := make([]byte, int64(len(file))-moovAt)
			if _, err := s.ReadAt(moov, moovAt); err != nil || !bytes.Equal(moov, file[moovAt:]) {
				t.Fatalf("reading the index: %v, or its bytes differ", err)
			}
			indexAt := time.Now()
			out := &firstBytes{}
			v := &verdict{s: s}
			if _, err := (playback.Target{Command: []string{"cat"}, Stdout: out}).PlayWhileVerifying(ctx, s, playback.RTPOptions{}, v.verify); err != nil {
				t.Fatalf("PlayWhileVerifying: %v", err)
			}
			if !indexAt.Before(v.at) || out.at.IsZero() || !out.at.Before(v.at) {
				t.Errorf("the index was read after %v, the player's first bytes came after %v, the fetch's result after %v: want both before",
					indexAt.Sub(start), out.at.Sub(start), v.at.Sub(start))
			}
			if got := out.buf.Bytes(); !bytes.Equal(got, file) {
				t.Errorf("the player got %d bytes, want the file's %d", len(got), len(file))
			}
			if v.res.Method != tc.method {
				t.Errorf("method %s, want %s", v.res.Method, tc.method)
			}
			checkCached(t, v.res, id)
			t.Logf("%s: index read after %v, the player's first bytes after %v, the fetch's result after %v", tc.name,
				indexAt.Sub(start).Round(time.Millisecond), out.at.Sub(start).Round(time.Millisecond), v.at.Sub(start).Round(time.Millisecond))
		})
	}
}

// TestPlayBadOrigin: the origin's copy changed after publishing (its second
// half), over P2SP and over HTTP only: the playback starts on the intact
// first half, then the failed verification stops it at once; the report
// reached the origin, its damaged notice came back, nothing is cached.
func TestPlayBadOrigin(t *testing.T) {
	for _, tc := range routes {
		t.Run(tc.name, func(t *testing.T) {
			stage := p2sp.StageSHA256 // found when the whole file is checked
			if tc.p2p {
				stage = p2sp.StageOrigin // found by the web seed's first bad piece
			}
			file := wav(4 << 20)
			id := idOf(file)
			w := newWorld(t, false, map[string][]byte{"clip.wav": file}, tc.origin(), 0)
			changed := append([]byte(nil), file...)
			for i := len(changed) / 2; i < len(changed); i++ {
				changed[i] ^= 0xff
			}
			if err := os.WriteFile(filepath.Join(w.dir, "clip.wav"), changed, 0o644); err != nil {
				t.Fatal(err)
			}
			dest := w.destination(t)
			o := w.sender(t)
			cache := t.TempDir()
			m := w.manager(t, "client", client.Options{CacheDir: cache, StallTimeout: 10 * time.Second})
			ctx, s := open(t, m, id)
			v := &verdict{s: s}
			st, err := playback.Target{RTP: dest.addr}.PlayWhileVerifying(ctx, s, o, v.verify)
			stopped := time.Now()
			var fe *client.FetchError
			if tc.p2p {
				fe = checkFailure(t, w, err, id, cache)
			} else { // no record to ask for the status later
				if !errors.As(err, &fe) {
					t.Fatalf("PlayWhileVerifying: %v, want a *client.FetchError", err)
				}
				if fe.Answer.Status != p2sp.StatusDamaged || fe.Answer.Notice == "" || w.origin.Stats().Reports < 1 {
					t.Errorf("answer %+v (%d reports): want status damaged with a notice", fe.Answer, w.origin.Stats().Reports)
				}
				checkNothingCached(t, cache, id)
			}
			if fe != nil && fe.Report.Stage != stage {
				t.Errorf("report stage %s, want %s", fe.Report.Stage, stage)
			}
			if d := stopped.Sub(v.at); d > time.Second {
				t.Errorf("the playback ended %v after the verification failed, want at once", d)
			}
			select {
			case <-dest.first:
			default:
				t.Error("no RTP packet arrived before the verification failed")
			}
			got := dest.n.Load()
			time.Sleep(200 * time.Millisecond) // the LAN delivers what is in flight
			if late := dest.n.Load() - got; late > 2 {
				t.Errorf("%d RTP packets arrived after the playback was stopped", late)
			}
			if want := int64(len(file)) / 1200; int64(st.Packets) >= want {
				t.Errorf("%d packets sent, the whole file's %d: the playback was not stopped", st.Packets, want)
			}
			t.Logf("%s: %d packets sent before the verdict (%s); the playback ended %v after it", tc.name, st.Packets, fe.Report.Stage, stopped.Sub(v.at).Round(time.Millisecond))
		})
	}
}
