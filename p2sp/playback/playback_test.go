package playback

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The fast path's port is a Sender.
var _ Sender = (*mediaport.Port)(nil)
var _ Sender = (*net.UDPConn)(nil)

// fakeClock jumps to each time SendRTP waits for and records it.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration // since the start
	start time.Time
}

func newFakeClock() *fakeClock {
	t := time.Unix(1_700_000_000, 0)
	return &fakeClock{now: t, start: t}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, t.Sub(c.start))
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

// udpPair is a kernel UDP sender and a receiver on loopback.
func udpPair(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	t.Helper()
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	rx.SetReadBuffer(1 << 20)
	t.Cleanup(func() { rx.Close(); tx.Close() })
	return tx, rx
}

// receive reads n RTP packets (or fewer when none arrive for a second).
func receive(t *testing.T, rx *net.UDPConn, n int) []rtp.Packet {
	t.Helper()
	var out []rtp.Packet
	buf := make([]byte, 2048)
	for len(out) < n {
		rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, _, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d of %d packets: %v", len(out), n, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(slices.Clone(buf[:m])); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkStream checks numbering, timestamps (step samples) and pacing.
func checkStream(t *testing.T, got []rtp.Packet, clock *fakeClock, pt uint8, step uint32, rate int) {
	t.Helper()
	for i, p := range got {
		if p.PayloadType != pt || p.SSRC != 0x11223344 || p.SequenceNumber != 65530+uint16(i) || p.Timestamp != 4294967000+uint32(i)*step || p.Marker != (i == 0) {
			t.Errorf("packet %d: pt %d ssrc %#x seq %d ts %d marker %v", i, p.PayloadType, p.SSRC, p.SequenceNumber, p.Timestamp, p.Marker)
		}
		if want := time.Duration(int64(i) * int64(step) * int64(time.Second) / int64(rate)); clock.waits[i] != want {
			t.Errorf("packet %d sent at %v, want %v", i, clock.waits[i], want)
		}
	}
}

// sendFile sends file as RTP on a fake clock, checks the stats and the
// stream (timestamps step apart), and returns the packets received.
func sendFile(t *testing.T, name string, file []byte, step uint32, want Stats) []rtp.Packet {
	t.Helper()
	tx, rx := udpPair(t)
	clock := newFakeClock()
	st, err := SendRTP(context.Background(), writeFile(t, name, file), opts(tx, rx, clock))
	if err != nil {
		t.Fatal(err)
	}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	got := receive(t, rx, want.Packets)
	checkStream(t, got, clock, want.PayloadType, step, want.ClockRate)
	return got
}

func opts(tx *net.UDPConn, rx *net.UDPConn, clock Clock) RTPOptions {
	return RTPOptions{Sender: tx, Dest: rx.LocalAddr().(*net.UDPAddr).AddrPort(), Clock: clock,
		SSRC: 0x11223344, FirstSequence: 65530, FirstTimestamp: 4294967000}
}

func TestWAVMuLaw(t *testing.T) {
	got := sendFile(t, "a.wav", mediatest.MuLawWAV(90*time.Millisecond), 160,
		Stats{Codec: "PCMU/8000", PayloadType: 0, ClockRate: 8000, Packets: 5, Bytes: 720, SamplesPerPacket: 160, Duration: 90 * time.Millisecond})
	for i, p := range got {
		n := min(160, 720-i*160)
		for j, b := range p.Payload {
			if b != byte(i*160+j) || len(p.Payload) != n {
				t.Fatalf("packet %d: payload byte %d is %d, length %d; want byte(%d), length %d", i, j, b, len(p.Payload), i*160+j, n)
			}
		}
	}
}

func TestWAVPCMNarrowbandBecomesPCMU(t *testing.T) {
	file := mediatest.PCMWAV(8000, 1, 60*time.Millisecond)
	got := sendFile(t, "a.wav", file, 160,
		Stats{Codec: "PCMU/8000", PayloadType: 0, ClockRate: 8000, Packets: 3, Bytes: 480, SamplesPerPacket: 160, Duration: 60 * time.Millisecond})
	samples := file[44:]
	for i, p := range got {
		for j, b := range p.Payload {
			s := int16(binary.LittleEndian.Uint16(samples[2*(i*160+j):]))
			if d := int(muLawToLinear(b)) - int(s); d > 256 || d < -256 {
				t.Fatalf("packet %d sample %d: %d encodes to %#x = %d", i, j, s, b, muLawToLinear(b))
			}
		}
	}
}

func TestWAVL16(t *testing.T) {
	file := mediatest.PCMWAV(16000, 2, 50*time.Millisecond) // 800 frames of 4 bytes
	// 20 ms would be 1280 bytes, over the 1200-byte cap: 300 samples.
	got := sendFile(t, "a.wav", file, 300,
		Stats{Codec: "L16/16000/2", PayloadType: 96, ClockRate: 16000, Packets: 3, Bytes: 3200, SamplesPerPacket: 300, Duration: 50 * time.Millisecond})
	var payload []byte
	for _, p := range got {
		payload = append(payload, p.Payload...)
	}
	pcm := file[44:]
	for i := 0; i+1 < len(pcm); i += 2 {
		if payload[i] != pcm[i+1] || payload[i+1] != pcm[i] {
			t.Fatalf("sample at byte %d not in network order", i)
		}
	}
}

func TestOggOpus(t *testing.T) {
	got := sendFile(t, "a.ogg", mediatest.OggOpus(10, 4), 960,
		Stats{Codec: "opus/48000/1", PayloadType: 111, ClockRate: 48000, Packets: 10, Bytes: 40, Duration: 200*time.Millisecond - mediatest.OpusPreSkip*time.Second/48000})
	for i, p := range got {
		if !bytes.Equal(p.Payload, mediatest.OpusPacket(i)) {
			t.Errorf("packet %d payload %x, want %x", i, p.Payload, mediatest.OpusPacket(i))
		}
	}
}

func TestFFmpegOggOpus(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	path := filepath.Join(t.TempDir(), "a.ogg")
	if b, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "libopus", "-frame_duration", "20", path).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, b)
	}
	tx, rx := udpPair(t)
	clock := newFakeClock()
	st, err := SendRTP(context.Background(), path, opts(tx, rx, clock))
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets < 25 || st.Packets > 27 || st.Duration < 490*time.Millisecond || st.Duration > 510*time.Millisecond {
		t.Errorf("stats %+v, want about 25 packets over 0.5 s", st)
	}
	checkStream(t, receive(t, rx, st.Packets), clock, 111, 960, 48000)
}

// aacM4A makes a 0.3 s AAC file with ffmpeg (its index at the end, as
// ffmpeg writes it by default), or skips the test without ffmpeg.
func aacM4A(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	path := filepath.Join(t.TempDir(), "a.m4a")
	if b, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.3", "-c:a", "aac", path).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, b)
	}
	return path
}

func TestMP4ThroughFFmpeg(t *testing.T) {
	path := aacM4A(t)
	_, rx := udpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := SendRTP(ctx, path, RTPOptions{Dest: rx.LocalAddr().(*net.UDPAddr).AddrPort(), SSRC: 0x11223344})
	if err != nil {
		t.Fatal(err)
	}
	if st.Codec != "ffmpeg" {
		t.Errorf("stats %+v", st)
	}
	got := receive(t, rx, 10)
	for _, p := range got {
		if p.PayloadType != 111 || p.SSRC != 0x11223344 {
			t.Fatalf("packet: pt %d ssrc %#x", p.PayloadType, p.SSRC)
		}
	}
}

func TestErrors(t *testing.T) {
	tx, rx := udpPair(t)
	o := opts(tx, rx, newFakeClock())
	mp4 := writeFile(t, "a.mp4", mediatest.MP4("soun", time.Second, 2, false))
	o.FFmpeg = "/nonexistent/ffmpeg"
	if _, err := SendRTP(context.Background(), mp4, o); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("MP4 without ffmpeg: %v", err)
	}
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"truncated.wav", mediatest.MuLawWAV(time.Second)[:100], "truncated"},
		{"bad.ogg", mediatest.OggOpus(10, 3)[:200], "ogg"},
	} {
		if _, err := SendRTP(context.Background(), writeFile(t, tc.name, tc.file), opts(tx, rx, newFakeClock())); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := SendRTP(context.Background(), "/nonexistent.wav", o); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := SendRTP(context.Background(), mp4, RTPOptions{Sender: tx}); err == nil {
		t.Error("no destination: no error")
	}
	// A cancelled context stops the stream between packets.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o = opts(tx, rx, RealClock())
	if _, err := SendRTP(ctx, writeFile(t, "long.wav", mediatest.MuLawWAV(10*time.Second)), o); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRealClockPaces(t *testing.T) {
	tx, rx := udpPair(t)
	o := opts(tx, rx, RealClock())
	start := time.Now()
	if _, err := SendRTP(context.Background(), writeFile(t, "a.wav", mediatest.MuLawWAV(100*time.Millisecond)), o); err != nil {
		t.Fatal(err)
	}
	// The fifth packet leaves 80 ms after the first.
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("5 packets of 20 ms sent in %v, want at least 80 ms", d)
	}
	receive(t, rx, 5)
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
		err  bool
	}{
		{"rtp://198.51.100.20:5004", Target{RTP: netip.MustParseAddrPort("198.51.100.20:5004")}, false},
		{"rtp://[2001:db8::20]:5004", Target{RTP: netip.MustParseAddrPort("[2001:db8::20]:5004")}, false},
		{"rtp://example.com:5004", Target{}, true},
		{"rtp://198.51.100.20", Target{}, true},
		{"rtp://198.51.100.20:0", Target{}, true},
		{"rtp://198.51.100.20:5004/x", Target{}, true},
		{"ffplay -nodisp -autoexit {}", Target{Command: []string{"ffplay", "-nodisp", "-autoexit", "{}"}}, false},
		{`mpv --title='my player' "--x=a \"b\"" a\ b`, Target{Command: []string{"mpv", "--title=my player", `--x=a "b"`, "a b"}}, false},
		{"   ", Target{}, true},
		{"mpv 'unterminated", Target{}, true},
	} {
		got, err := ParseTarget(tc.in)
		if (err != nil) != tc.err || (err == nil && (got.RTP != tc.want.RTP || !slices.Equal(got.Command, tc.want.Command))) {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestRunCommand(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, "a file.wav", mediatest.MuLawWAV(10*time.Millisecond))
	dst := filepath.Join(dir, "copy")
	tgt, err := ParseTarget("cp {} " + dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Play(context.Background(), src, RTPOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Error("the command did not get the path (with its space) as one argument")
	}
	// Without {} the file comes on stdin.
	if err := RunCommand(context.Background(), []string{"cmp", "-", src}, src); err != nil {
		t.Errorf("the file on stdin: %v", err)
	}
	if stdin := (Target{Command: []string{"ffplay", "-"}}); !tgt.NeedsPath() || stdin.NeedsPath() {
		t.Errorf("NeedsPath: %v for %q, %v for %q; want true only with {}", tgt.NeedsPath(), tgt.Command, stdin.NeedsPath(), stdin.Command)
	}
	if err := RunCommand(context.Background(), []string{"false"}, src); err == nil {
		t.Error("a failing player: no error")
	}
}

func TestMuLaw(t *testing.T) {
	for _, tc := range []struct {
		in   int16
		want byte
	}{{0, 0xFF}, {-1, 0x7F}, {32767, 0x80}, {-32768, 0x00}, {1000, 0xCE}} {
		if got := linearToMuLaw(tc.in); got != tc.want {
			t.Errorf("linearToMuLaw(%d) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	for s := -32768; s <= 32767; s += 7 {
		back := int(muLawToLinear(linearToMuLaw(int16(s))))
		if d := back - s; d > max(s, -s)/16+16 || -d > max(s, -s)/16+16 {
			t.Fatalf("%d -> %d", s, back)
		}
	}
}

// muLawToLinear is G.711's decoder.
func muLawToLinear(u byte) int16 {
	u = ^u
	x := (int(u&0x0F)<<3 + 0x84) << (u >> 4 & 7)
	x -= 0x84
	if u&0x80 != 0 {
		return int16(-x)
	}
	return int16(x)
}
