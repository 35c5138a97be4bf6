package playback

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

// downloading is a file being downloaded: ReadAt waits until the bytes
// asked for have arrived.
type downloading struct {
	mu    sync.Mutex
	cond  *sync.Cond
	data  []byte
	avail int
	pos   int // Read's
}

func newDownloading(data []byte) *downloading {
	d := &downloading{data: data}
	d.cond = sync.NewCond(&d.mu)
	return d
}

func (d *downloading) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= int64(len(d.data)) {
		return 0, io.EOF
	}
	end := min(int(off)+len(p), len(d.data))
	for d.avail < end {
		d.cond.Wait()
	}
	n := copy(p, d.data[off:end])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read reads what has arrived at the position, waiting for a byte.
func (d *downloading) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pos >= len(d.data) {
		return 0, io.EOF
	}
	for d.avail <= d.pos {
		d.cond.Wait()
	}
	n := copy(p, d.data[d.pos:d.avail])
	d.pos += n
	return n, nil
}

func (d *downloading) Seek(off int64, whence int) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if whence != io.SeekStart {
		return 0, errors.New("downloading: SeekStart only")
	}
	d.pos = int(off)
	return off, nil
}

func (d *downloading) arrive(n int) {
	d.mu.Lock()
	d.avail = min(d.avail+n, len(d.data))
	d.mu.Unlock()
	d.cond.Broadcast()
}

// TestPlayWhileDownloading: packets leave while the file's second half has
// not arrived yet, and the whole file follows once it does.
func TestPlayWhileDownloading(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    []byte
		packets int
	}{
		{"wav", mediatest.MuLawWAV(200 * time.Millisecond), 10},
		{"ogg", mediatest.OggOpus(30, 3), 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, rx := udpPair(t)
			file := newDownloading(tc.file)
			file.arrive(len(tc.file) / 2)
			type result struct {
				st  Stats
				err error
			}
			done := make(chan result, 1)
			go func() {
				st, err := SendRTPReader(context.Background(), file, int64(len(tc.file)), opts(tx, rx, newFakeClock()))
				done <- result{st, err}
			}()
			first := receive(t, rx, 1) // before the rest arrives
			file.arrive(len(tc.file))
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("SendRTPReader did not end")
			}
			if r.err != nil || r.st.Packets != tc.packets {
				t.Fatalf("stats %+v, %v; want %d packets", r.st, r.err, tc.packets)
			}
			rest := receive(t, rx, tc.packets-1)
			if first[0].SequenceNumber != 65530 || rest[len(rest)-1].SequenceNumber != 65530+uint16(tc.packets-1) {
				t.Errorf("sequence %d..%d", first[0].SequenceNumber, rest[len(rest)-1].SequenceNumber)
			}
		})
	}
}

func (d *downloading) Size() int64 { return int64(len(d.data)) }

// firstWrite is a player's stdout that notes its first bytes.
type firstWrite struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan struct{}
}

func newFirstWrite() *firstWrite { return &firstWrite{first: make(chan struct{})} }

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 && len(p) > 0 {
		close(w.first)
	}
	return w.buf.Write(p)
}

func (w *firstWrite) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// TestPlayStreamStdin: a player command without "{}" reads the file on its
// stdin while it downloads: its first bytes come while half the file has
// not arrived, and all of them once it has.
func TestPlayStreamStdin(t *testing.T) {
	file := mediatest.MuLawWAV(time.Second)
	src := newDownloading(file)
	src.arrive(len(file) / 2)
	out := newFirstWrite()
	player := Target{Command: []string{"cat"}, Stdout: out}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := player.PlayStream(ctx, src, RTPOptions{})
		done <- err
	}()
	select {
	case <-out.first:
	case <-ctx.Done():
		t.Fatal("the player got no bytes from the first half")
	}
	src.arrive(len(file))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.bytes(); !bytes.Equal(got, file) {
		t.Errorf("the player got %d bytes, want the file's %d", len(got), len(file))
	}
	if _, err := (Target{Command: []string{"cp", "{}", "x"}}).PlayStream(ctx, src, RTPOptions{}); err == nil {
		t.Error("a player given the path played a file still downloading")
	}
}

// stopSender counts packets and says when the first has gone.
type stopSender struct {
	mu    sync.Mutex
	n     int
	first chan struct{}
}

func (s *stopSender) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n++; s.n == 1 {
		close(s.first)
	}
	return len(b), nil
}

func (s *stopSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestPlayWhileVerifying: a verification that fails while a 10 s stream
// plays in real time stops it at once and is what is returned; one that
// passes lets it play to its end.
func TestPlayWhileVerifying(t *testing.T) {
	file := mediatest.MuLawWAV(10 * time.Second)
	src := newDownloading(file)
	src.arrive(len(file))
	tx := &stopSender{first: make(chan struct{})}
	o := RTPOptions{Sender: tx, Deterministic: true}
	bad := errors.New("the whole file's SHA-256 does not match")
	start := time.Now()
	st, err := Target{RTP: netip.MustParseAddrPort("198.51.100.20:5004")}.PlayWhileVerifying(context.Background(), src, o, func(ctx context.Context) error {
		select {
		case <-tx.first:
			return bad
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if !errors.Is(err, bad) {
		t.Fatalf("PlayWhileVerifying = %v, want the verification's error", err)
	}
	if el := time.Since(start); el > 2*time.Second || st.Packets >= 500 {
		t.Errorf("the playback went on for %v, %d of 500 packets, after the verification failed", el, st.Packets)
	}
	sent := tx.count()
	time.Sleep(100 * time.Millisecond)
	if tx.count() != sent {
		t.Error("packets left after PlayWhileVerifying returned")
	}

	short := mediatest.MuLawWAV(100 * time.Millisecond)
	src = newDownloading(short)
	src.arrive(len(short))
	st, err = Target{RTP: netip.MustParseAddrPort("198.51.100.20:5004")}.PlayWhileVerifying(context.Background(), src,
		RTPOptions{Sender: &stopSender{first: make(chan struct{})}, Clock: newFakeClock()}, func(context.Context) error { return nil })
	if err != nil || st.Packets != 5 {
		t.Errorf("a verified file: %+v, %v; want 5 packets", st, err)
	}
}

// TestMP4StreamThroughFFmpeg: an MP4 with its index at the end (ffmpeg's
// default) is read by ffmpeg from the loopback server, which seeks to the
// index, and leaves as RTP.
func TestMP4StreamThroughFFmpeg(t *testing.T) {
	file, err := os.ReadFile(aacM4A(t))
	if err != nil {
		t.Fatal(err)
	}
	if i, j := bytes.Index(file, []byte("moov")), bytes.Index(file, []byte("mdat")); i < j {
		t.Fatalf("the test MP4 has its index first (moov at %d, mdat at %d)", i, j)
	}
	src := newDownloading(file)
	src.arrive(len(file))
	_, rx := udpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tgt := Target{RTP: rx.LocalAddr().(*net.UDPAddr).AddrPort()}
	st, err := tgt.PlayStream(ctx, src, RTPOptions{SSRC: 0x11223344})
	if err != nil || st.Codec != "ffmpeg" {
		t.Fatalf("PlayStream = %+v, %v", st, err)
	}
	for _, p := range receive(t, rx, 10) {
		if p.PayloadType != 111 || p.SSRC != 0x11223344 {
			t.Fatalf("packet: pt %d ssrc %#x", p.PayloadType, p.SSRC)
		}
	}
}

// TestSendAllocs: sending a packet allocates nothing (the RTP header is
// marshalled into the stream's own buffer).
func TestSendAllocs(t *testing.T) {
	o, err := RTPOptions{Sender: &stopSender{first: make(chan struct{})}, Dest: netip.MustParseAddrPort("198.51.100.20:5004"), Clock: nowClock{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(o, PayloadPCMU, 8000, "PCMU/8000")
	payload := make([]byte, 160)
	ctx := context.Background()
	s.send(ctx, payload, 0) // the first packet closes the sender's channel
	pos := int64(160)
	if n := testing.AllocsPerRun(1000, func() {
		if err := s.send(ctx, payload, pos); err != nil {
			t.Fatal(err)
		}
		pos += 160
	}); n != 0 {
		t.Errorf("%v allocations per packet, want 0", n)
	}
}

// nowClock never waits.
type nowClock struct{}

func (nowClock) Now() time.Time                                    { return time.Time{} }
func (nowClock) SleepUntil(ctx context.Context, _ time.Time) error { return ctx.Err() }
