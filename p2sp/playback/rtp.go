package playback

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/p2sp/media"
)

// Payload types SendRTP uses.
const (
	PayloadPCMU        = 0   // G.711 μ-law, 8 kHz (RFC 3551)
	PayloadPCMA        = 8   // G.711 A-law, 8 kHz
	DefaultPayloadL16  = 96  // dynamic: L16 at the file's rate and channels
	DefaultPayloadOpus = 111 // dynamic: Opus, 48 kHz (the value WebRTC stacks use)
)

// Sender sends a datagram to an address: a *mediaport.Port (mediastack's
// fast path) or a kernel *net.UDPConn.
type Sender interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// Clock paces the packets.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t, or with ctx's error when ctx ends first.
	SleepUntil(ctx context.Context, t time.Time) error
}

// RealClock is the wall clock.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RTPOptions configures SendRTP.
type RTPOptions struct {
	Sender Sender         // required (not used for ffmpeg's files)
	Dest   netip.AddrPort // required
	Clock  Clock          // default RealClock()
	// SSRC, FirstSequence and FirstTimestamp start the stream; 0 picks
	// random values (RFC 3550), except that a zero SSRC with Deterministic
	// stays 0.
	SSRC           uint32
	FirstSequence  uint16
	FirstTimestamp uint32
	Deterministic  bool // keep zero SSRC/sequence/timestamp (tests)
	// L16PayloadType and OpusPayloadType are the dynamic payload types
	// (defaults 96 and 111).
	L16PayloadType, OpusPayloadType uint8
	// MaxPayload caps an L16 packet's payload (default 1200 bytes).
	MaxPayload int
	// FFmpeg names the ffmpeg binary for containers SendRTP does not
	// packetize itself (default "ffmpeg" on PATH).
	FFmpeg string
}

// Stats says what SendRTP sent.
type Stats struct {
	Codec            string // "PCMU/8000", "L16/44100/2", "opus/48000/2", "ffmpeg"
	PayloadType      uint8
	ClockRate        int
	Packets, Bytes   int // RTP packets and payload bytes
	SamplesPerPacket int // WAV: the packet size in samples (per channel)
	Duration         time.Duration
}

// SendRTP sends the media file at path as one RTP stream to o.Dest, paced
// in real time by o.Clock. The package doc lists the formats. The file is
// taken as verified: what does not parse ends the stream with an error.
func SendRTP(ctx context.Context, path string, o RTPOptions) (Stats, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	var head [12]byte
	f.ReadAt(head[:], 0)
	switch media.Sniff(head[:]) {
	case media.TypeWAV, media.TypeOgg:
		return sendReader(ctx, f, fi.Size(), head[:], o)
	}
	return sendFFmpeg(ctx, path, o)
}

// SendRTPReader is SendRTP over the first size bytes of r, for WAV and Ogg
// Opus. It reads r front to back (headers, then samples or pages in order,
// each once), so r may be a file still being downloaded whose ReadAt waits
// for the bytes asked for: playback can start before the download ends.
func SendRTPReader(ctx context.Context, r io.ReaderAt, size int64, o RTPOptions) (Stats, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	var head [12]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	return sendReader(ctx, r, size, head[:], o)
}

func sendReader(ctx context.Context, r io.ReaderAt, size int64, head []byte, o RTPOptions) (Stats, error) {
	if o.Sender == nil {
		return Stats{}, errors.New("playback: no RTP sender")
	}
	switch media.Sniff(head) {
	case media.TypeWAV:
		return sendWAV(ctx, r, size, o)
	case media.TypeOgg:
		return sendOggOpus(ctx, r, size, o)
	}
	return Stats{}, fmt.Errorf("playback: %w: only WAV and Ogg Opus are packetized here", media.ErrUnknownFormat)
}

func (o RTPOptions) withDefaults() (RTPOptions, error) {
	if !o.Dest.IsValid() || o.Dest.Port() == 0 {
		return o, errors.New("playback: no RTP destination")
	}
	if o.Clock == nil {
		o.Clock = RealClock()
	}
	if o.L16PayloadType == 0 {
		o.L16PayloadType = DefaultPayloadL16
	}
	if o.OpusPayloadType == 0 {
		o.OpusPayloadType = DefaultPayloadOpus
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1200
	}
	if !o.Deterministic {
		var b [10]byte
		rand.Read(b[:])
		if o.SSRC == 0 {
			o.SSRC = binary.BigEndian.Uint32(b[0:])
		}
		if o.FirstSequence == 0 {
			o.FirstSequence = binary.BigEndian.Uint16(b[4:])
		}
		if o.FirstTimestamp == 0 {
			o.FirstTimestamp = binary.BigEndian.Uint32(b[6:])
		}
	}
	return o, nil
}

// stream numbers and sends the packets of one RTP stream.
type stream struct {
	o     RTPOptions
	start time.Time
	pkt   rtp.Packet
	buf   []byte
	st    Stats
}

func newStream(o RTPOptions, pt uint8, rate int, codec string) *stream {
	s := &stream{o: o, start: o.Clock.Now(), buf: make([]byte, 0, 1500)}
	s.pkt.Header = rtp.Header{Version: 2, PayloadType: pt, SSRC: o.SSRC, SequenceNumber: o.FirstSequence, Marker: true}
	s.st = Stats{Codec: codec, PayloadType: pt, ClockRate: rate}
	return s
}

// send sends payload at position pos (in clock-rate units from the start of
// the stream) once the clock reaches it.
func (s *stream) send(ctx context.Context, payload []byte, pos int64) error {
	at := s.start.Add(time.Duration(pos * int64(time.Second) / int64(s.st.ClockRate)))
	if err := s.o.Clock.SleepUntil(ctx, at); err != nil {
		return err
	}
	s.pkt.Timestamp = s.o.FirstTimestamp + uint32(pos)
	s.pkt.Payload = payload
	n, err := s.pkt.MarshalTo(s.buf[:cap(s.buf)])
	if err != nil {
		return fmt.Errorf("playback: building an RTP packet: %w", err)
	}
	if _, err := s.o.Sender.WriteToUDPAddrPort(s.buf[:n], s.o.Dest); err != nil {
		return fmt.Errorf("playback: sending RTP to %s: %w", s.o.Dest, err)
	}
	s.pkt.SequenceNumber++
	s.pkt.Marker = false
	s.st.Packets++
	s.st.Bytes += len(payload)
	return nil
}

func sendWAV(ctx context.Context, r io.ReaderAt, size int64, o RTPOptions) (Stats, error) {
	w, err := media.ParseWAV(r, size)
	if err != nil {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	narrow := w.SampleRate == 8000 && w.Channels == 1
	var s *stream
	var convert func(dst, src []byte) []byte
	switch {
	case narrow && w.Format == media.WAVFormatMuLaw && w.BitsPerSample == 8:
		s = newStream(o, PayloadPCMU, 8000, "PCMU/8000")
		convert = func(dst, src []byte) []byte { return append(dst, src...) }
	case narrow && w.Format == media.WAVFormatALaw && w.BitsPerSample == 8:
		s = newStream(o, PayloadPCMA, 8000, "PCMA/8000")
		convert = func(dst, src []byte) []byte { return append(dst, src...) }
	case narrow && w.Format == media.WAVFormatPCM && w.BitsPerSample == 16:
		s = newStream(o, PayloadPCMU, 8000, "PCMU/8000")
		convert = func(dst, src []byte) []byte {
			for i := 0; i+1 < len(src); i += 2 {
				dst = append(dst, linearToMuLaw(int16(binary.LittleEndian.Uint16(src[i:]))))
			}
			return dst
		}
	case w.Format == media.WAVFormatPCM && w.BitsPerSample == 16:
		s = newStream(o, o.L16PayloadType, w.SampleRate, fmt.Sprintf("L16/%d/%d", w.SampleRate, w.Channels))
		convert = func(dst, src []byte) []byte { // little-endian to network order
			for i := 0; i+1 < len(src); i += 2 {
				dst = append(dst, src[i+1], src[i])
			}
			return dst
		}
	case w.Format == media.WAVFormatPCM && w.BitsPerSample == 8:
		s = newStream(o, o.L16PayloadType, w.SampleRate, fmt.Sprintf("L16/%d/%d", w.SampleRate, w.Channels))
		convert = func(dst, src []byte) []byte { // unsigned 8-bit to signed 16-bit
			for _, c := range src {
				dst = append(dst, c-128, 0)
			}
			return dst
		}
	default:
		return Stats{}, fmt.Errorf("playback: WAV format %#x with %d-bit samples at %d Hz × %d: want PCM (8 or 16 bit) or G.711", w.Format, w.BitsPerSample, w.SampleRate, w.Channels)
	}
	// 20 ms of samples, fewer when that would not fit the payload cap.
	outBytesPerSample := w.Channels * 2 // L16
	if s.st.PayloadType == PayloadPCMU || s.st.PayloadType == PayloadPCMA {
		outBytesPerSample = 1
	}
	samples := max(1, min(w.SampleRate/50, o.MaxPayload/outBytesPerSample))
	s.st.SamplesPerPacket = samples
	in := make([]byte, samples*w.BlockAlign)
	out := make([]byte, 0, samples*outBytesPerSample)
	total := w.DataSize / int64(w.BlockAlign)
	for pos := int64(0); pos < total; pos += int64(samples) {
		n := min(int64(samples), total-pos)
		chunk := in[:n*int64(w.BlockAlign)]
		if _, err := r.ReadAt(chunk, w.DataOffset+pos*int64(w.BlockAlign)); err != nil {
			return s.st, fmt.Errorf("playback: reading samples: %w", err)
		}
		if err := s.send(ctx, convert(out[:0], chunk), pos); err != nil {
			return s.st, err
		}
	}
	s.st.Duration = w.Duration()
	return s.st, nil
}

func sendOggOpus(ctx context.Context, r io.ReaderAt, size int64, o RTPOptions) (Stats, error) {
	or := media.NewOggReader(r, size)
	head, err := or.NextPacket()
	if err != nil {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	codec, err := media.ParseOggCodec(head.Data)
	if err != nil {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	if codec.Name != "opus" {
		return Stats{}, fmt.Errorf("playback: Ogg %s: only Ogg Opus is sent as RTP", codec.Name)
	}
	serial := head.Serial
	s := newStream(o, o.OpusPayloadType, 48000, fmt.Sprintf("opus/48000/%d", codec.Channels))
	var page [][]byte // the audio packets ending on the current page
	var pageLen []int
	var end int64 // where the previous page ended (granule)
	packets := 0
	for {
		p, err := or.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.st, fmt.Errorf("playback: %w", err)
		}
		if p.Serial != serial {
			continue // another logical stream
		}
		if packets++; packets == 1 {
			continue // OpusTags
		}
		n, err := media.OpusPacketSamples(p.Data)
		if err != nil {
			return s.st, fmt.Errorf("playback: Opus packet %d: %w", packets-2, err)
		}
		page = append(page, p.Data)
		pageLen = append(pageLen, n)
		if !p.LastOnPage {
			continue
		}
		// The granule is where the page's last packet ends; count back from
		// it, except on the last page, whose granule may cut the final
		// packet short (end trimming): count on from the page before.
		pos := end
		if !p.EOS {
			pos = p.Granule
			for _, n := range pageLen {
				pos -= int64(n)
			}
		}
		for i, pkt := range page {
			if err := s.send(ctx, pkt, pos); err != nil {
				return s.st, err
			}
			pos += int64(pageLen[i])
		}
		end = p.Granule
		page, pageLen = page[:0], pageLen[:0]
	}
	if packets < 1 {
		return s.st, errors.New("playback: Ogg Opus without its OpusTags header")
	}
	if d := end - int64(codec.PreSkip); d > 0 {
		s.st.Duration = time.Duration(d * int64(time.Second) / 48000)
	}
	return s.st, nil
}

// sendFFmpeg hands the file (a path or a URL) to ffmpeg, which sends its
// first audio stream as Opus RTP from its own socket.
func sendFFmpeg(ctx context.Context, path string, o RTPOptions) (Stats, error) {
	bin := o.FFmpeg
	if bin == "" {
		bin = "ffmpeg"
	}
	exe, err := exec.LookPath(bin)
	if err != nil {
		return Stats{}, errors.New("playback: only WAV and Ogg Opus are sent as RTP without ffmpeg, which is not installed")
	}
	dest := fmt.Sprintf("rtp://%s", o.Dest)
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i", path,
		"-map", "0:a:0", "-c:a", "libopus", "-ar", "48000", "-payload_type", fmt.Sprint(o.OpusPayloadType),
		"-ssrc", fmt.Sprint(int32(o.SSRC)), "-f", "rtp", dest}
	cmd := exec.CommandContext(ctx, exe, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return Stats{}, fmt.Errorf("playback: ffmpeg %s to %s: %s", path, dest, msg)
	}
	return Stats{Codec: "ffmpeg", PayloadType: o.OpusPayloadType, ClockRate: 48000}, nil
}
