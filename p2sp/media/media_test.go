package media_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/p2sp/media"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProbeValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
		want media.Info
	}{
		{"pcm.wav", mediatest.PCMWAV(16000, 2, 1500*time.Millisecond), media.Info{Type: media.TypeWAV, Duration: 1500 * time.Millisecond}},
		{"mulaw.wav", mediatest.MuLawWAV(250 * time.Millisecond), media.Info{Type: media.TypeWAV, Duration: 250 * time.Millisecond}},
		{"odd.wav", mediatest.MuLawWAV(time.Second / 8000 * 3), media.Info{Type: media.TypeWAV, Duration: 375 * time.Microsecond}},
		{"opus.ogg", mediatest.OggOpus(50, 7), media.Info{Type: media.TypeOgg, Duration: time.Second - mediatest.OpusPreSkip*time.Second/48000}},
		{"empty-opus.ogg", mediatest.OggOpus(0, 1), media.Info{Type: media.TypeOgg}},
		{"video.mp4", mediatest.MP4("vide", 2500*time.Millisecond, 10, false), media.Info{Type: media.TypeMP4, Duration: 2500 * time.Millisecond}},
		{"audio.m4a", mediatest.MP4("soun", 1200*time.Millisecond, 3, true), media.Info{Type: media.TypeMP4Audio, Duration: 1200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := media.Probe(write(t, tc.name, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Probe = %+v, want %+v", got, tc.want)
			}
			if err := media.CheckPlayable(context.Background(), write(t, tc.name, tc.file)); err != nil {
				t.Errorf("CheckPlayable: %v", err)
			}
		})
	}
}

// flip returns b with the byte at i changed.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x55
	return c
}

func TestProbeBroken(t *testing.T) {
	wav := mediatest.PCMWAV(8000, 1, 100*time.Millisecond)
	ogg := mediatest.OggOpus(20, 4)
	mp4 := mediatest.MP4("vide", time.Second, 5, false)
	mp4Last := mediatest.MP4("vide", time.Second, 5, true)
	// The byte offsets below follow mediatest's layouts.
	for _, tc := range []struct {
		name string
		file []byte
		want string // part of the error
	}{
		{"empty", nil, "unknown format"},
		{"text", []byte("hello, this is not a media file"), "unknown format"},
		{"wav truncated in data", wav[:len(wav)-10], "RIFF chunk claims"},
		{"wav truncated in header", wav[:30], "RIFF chunk claims"},
		{"wav without data", fixRIFF(wav[:44-8]), "no data chunk"},
		{"wav 0 channels", fixRIFF(append(append(bytes.Clone(wav[:22]), 0, 0), wav[24:]...)), "0 channels"},
		{"wav bad byte rate", flip(wav, 28), "byte rate"},
		{"ogg truncated mid-page", ogg[:len(ogg)-5], "truncated"},
		{"ogg truncated at a page", ogg[:oggPageEnd(t, ogg, 3)], "without its end-of-stream page"},
		{"ogg bad CRC", flip(ogg, len(ogg)-1), "CRC"},
		{"ogg garbage after", append(bytes.Clone(ogg), "garbage!garbage!garbage!garbage!"...), "capture pattern"},
		{"ogg page missing", append(bytes.Clone(ogg[:oggPageEnd(t, ogg, 2)]), ogg[oggPageEnd(t, ogg, 3):]...), "a page is missing"},
		{"ogg header byte changed", flip(ogg, 28), "CRC"},
		{"ogg unknown codec", unknownCodecOgg(), "unknown codec"},
		{"ogg continues nothing", continuesNothingOgg(), "never started"},
		{"ogg without OpusTags", ogg[:oggPageEnd(t, ogg, 0)], "ends before its \"OpusTags\" header"},
		{"mp4 short mvhd", shortMvhdMP4(), "mvhd box"},
		{"mp4 truncated", mp4[:len(mp4)-50], "mdat"},
		{"mp4 moov last truncated", mp4Last[:len(mp4Last)-20], "moov"},
		{"mp4 index cut off", mp4Last[:len(mp4Last)-mp4MoovLen(mp4Last)], "no moov box"},
		{"mp4 stray bytes", append(bytes.Clone(mp4), 1, 2, 3), "stray bytes"},
		{"mp4 no ftyp", mp4[24:], "unknown format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := media.Probe(write(t, "f", tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Probe error %v, want one containing %q", err, tc.want)
			}
			if err2 := media.CheckPlayable(context.Background(), write(t, "f", tc.file)); err2 == nil {
				t.Errorf("CheckPlayable passed a file Probe rejects (%v)", err)
			}
		})
	}
	if _, err := media.Probe(write(t, "t", []byte("plain text file"))); !errors.Is(err, media.ErrUnknownFormat) {
		t.Errorf("Probe(text) = %v, want ErrUnknownFormat", err)
	}
}

func unknownCodecOgg() []byte {
	p := media.OggPage{HeaderType: media.OggBOS | media.OggEOS, Serial: 9, Lacing: []byte{8}, Body: []byte("NotACode")}
	return p.Append(nil)
}

func continuesNothingOgg() []byte {
	p := media.OggPage{HeaderType: media.OggBOS | media.OggContinued, Serial: 9, Lacing: []byte{8}, Body: []byte("OpusHead")}
	return p.Append(nil)
}

// shortMvhdMP4 has an mvhd of 8 payload bytes.
func shortMvhdMP4() []byte {
	box := func(typ string, payload ...byte) []byte {
		return append([]byte{0, 0, 0, byte(8 + len(payload)), typ[0], typ[1], typ[2], typ[3]}, payload...)
	}
	moov := box("moov", box("mvhd", 0, 0, 0, 0, 1, 2, 3, 4)...)
	return append(append(box("ftyp", []byte("isom\x00\x00\x02\x00")...), moov...), box("mdat", 1)...)
}

func fixRIFF(b []byte) []byte {
	b = bytes.Clone(b)
	n := uint32(len(b) - 8)
	b[4], b[5], b[6], b[7] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return b
}

// oggPageEnd is the offset just past page i (0-based).
func oggPageEnd(t *testing.T, b []byte, i int) int {
	r := media.NewOggReader(bytes.NewReader(b), int64(len(b)))
	for range i + 1 {
		if _, err := r.NextPage(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := r.NextPage()
	if err != nil {
		t.Fatal(err)
	}
	return int(p.Offset)
}

func mp4MoovLen(b []byte) int {
	i := bytes.LastIndex(b, []byte("moov"))
	return len(b) - i + 4
}

func TestOggPackets(t *testing.T) {
	b := mediatest.OggOpus(10, 4)
	r := media.NewOggReader(bytes.NewReader(b), int64(len(b)))
	var got [][]byte
	var granules []int64
	for {
		p, err := r.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Data)
		if p.LastOnPage {
			granules = append(granules, p.Granule)
		}
	}
	if len(got) != 12 || !bytes.HasPrefix(got[0], []byte("OpusHead")) || !bytes.HasPrefix(got[1], []byte("OpusTags")) {
		t.Fatalf("got %d packets, want 2 headers and 10 audio packets", len(got))
	}
	for i, p := range got[2:] {
		if !bytes.Equal(p, mediatest.OpusPacket(i)) {
			t.Errorf("packet %d = %x, want %x", i, p, mediatest.OpusPacket(i))
		}
	}
	want := []int64{0, 0, 4 * 960, 8 * 960, 10 * 960}
	if !slicesEqual(granules, want) {
		t.Errorf("granules %v, want %v", granules, want)
	}
}

func TestOggPacketAcrossPages(t *testing.T) {
	// A 600-byte packet split over two pages, then a small one.
	big := bytes.Repeat([]byte{0xAB}, 600)
	var b []byte
	p := media.OggPage{HeaderType: media.OggBOS, Granule: -1, Serial: 1, Lacing: []byte{255, 255}, Body: big[:510]}
	b = p.Append(b)
	p = media.OggPage{HeaderType: media.OggContinued | media.OggEOS, Granule: 7, Serial: 1, Sequence: 1, Lacing: []byte{90, 2}, Body: append(bytes.Clone(big[510:]), 1, 2)}
	b = p.Append(b)
	r := media.NewOggReader(bytes.NewReader(b), int64(len(b)))
	first, err := r.NextPacket()
	if err != nil || !bytes.Equal(first.Data, big) || first.Granule != 7 || first.LastOnPage {
		t.Fatalf("first packet: %d bytes, granule %d, last %v, err %v", len(first.Data), first.Granule, first.LastOnPage, err)
	}
	second, err := r.NextPacket()
	if err != nil || !bytes.Equal(second.Data, []byte{1, 2}) || !second.LastOnPage || !second.EOS {
		t.Fatalf("second packet: %x %+v %v", second.Data, second, err)
	}
	if _, err := r.NextPacket(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want io.EOF", err)
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ffmpegFile makes a file with ffmpeg, skipping the test when it is not
// installed (.ci/run installs it).
func ffmpegFile(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-nostdin", "-hide_banner", "-loglevel", "error"}, args...), "-y", out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

func TestFFmpegFiles(t *testing.T) {
	tone := []string{"-f", "lavfi", "-i", "sine=frequency=440:duration=1.5"}
	for _, tc := range []struct {
		name     string
		args     []string
		wantType string
	}{
		{"a.wav", append(tone, "-ar", "8000", "-ac", "1"), media.TypeWAV},
		{"a.opus.ogg", append(tone, "-c:a", "libopus", "-b:a", "24k"), media.TypeOgg},
		{"a.vorbis.ogg", append(tone, "-c:a", "libvorbis"), media.TypeOgg},
		{"a.m4a", append(tone, "-c:a", "aac"), media.TypeMP4Audio},
		{"v.mp4", []string{"-f", "lavfi", "-i", "testsrc=duration=1.5:size=64x48:rate=10", "-f", "lavfi", "-i", "sine=duration=1.5", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"}, media.TypeMP4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ffmpegFile(t, tc.name, tc.args...)
			info, err := media.Probe(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != tc.wantType {
				t.Errorf("type %s, want %s", info.Type, tc.wantType)
			}
			if d := info.Duration - 1500*time.Millisecond; d < -50*time.Millisecond || d > 150*time.Millisecond {
				t.Errorf("duration %v, want about 1.5 s", info.Duration)
			}
			ctx := context.Background()
			if err := media.CheckPlayable(ctx, path, media.FFprobe(true)); err != nil {
				t.Errorf("CheckPlayable with ffprobe: %v", err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cut := write(t, "cut-"+tc.name, b[:len(b)*2/3])
			if err := media.CheckPlayable(ctx, cut, media.FFprobe(true)); err == nil {
				t.Errorf("CheckPlayable passed the file cut to 2/3")
			}
		})
	}
}

func TestFFprobeRejects(t *testing.T) {
	// A stand-in ffprobe that fails proves its verdict is taken over the
	// built-in checks' (which pass this file).
	dir := t.TempDir()
	fake := filepath.Join(dir, "ffprobe-fails")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'moov atom not found' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := write(t, "a.wav", mediatest.PCMWAV(8000, 1, 100*time.Millisecond))
	err := media.CheckPlayable(context.Background(), path, media.FFprobe(true), media.FFprobePath(fake))
	if err == nil || !strings.Contains(err.Error(), "moov atom not found") {
		t.Fatalf("CheckPlayable = %v, want ffprobe's complaint", err)
	}
	// Without the option, ffprobe is not asked.
	if err := media.CheckPlayable(context.Background(), path, media.FFprobePath(fake)); err != nil {
		t.Fatalf("CheckPlayable without FFprobe: %v", err)
	}
}

func TestOpusPacketSamples(t *testing.T) {
	for _, tc := range []struct {
		pkt  []byte
		want int
	}{
		{mediatest.OpusPacket(0), 960},
		{[]byte{9 << 3}, 960},              // SILK WB 20 ms
		{[]byte{3<<3 | 1, 0, 0}, 2 * 2880}, // two SILK NB 60 ms frames
		{[]byte{16<<3 | 3, 5}, 5 * 120},    // five CELT 2.5 ms frames
		{[]byte{31<<3 | 3, 6}, 6 * 960},    // 120 ms
		{[]byte{31<<3 | 3, 7}, 0},          // 140 ms: too long
		{[]byte{31<<3 | 3}, 0},             // no count
		{nil, 0},
	} {
		got, err := media.OpusPacketSamples(tc.pkt)
		if got != tc.want || (err != nil) != (tc.want == 0) {
			t.Errorf("OpusPacketSamples(%x) = %d, %v; want %d", tc.pkt, got, err, tc.want)
		}
	}
}
