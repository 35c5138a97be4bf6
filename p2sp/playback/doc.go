// Package playback is the P2SP client's playback component (seed 002,
// component 130): it hands a media file to a player, once verified (Play)
// or while it downloads (PlayStream, PlayWhileVerifying). The player is
// either a command, run without a shell, or an RTP receiver at an address,
// fed through mediastack's media fast path. A command with "{}" in an
// argument ("ffplay -nodisp -autoexit {}") is given the file's path, so it
// plays a verified file only; without "{}" ("ffplay -nodisp -autoexit -")
// it reads the file's bytes, in order, on its stdin, also while they
// download.
//
// RTP: SendRTP packetizes the file itself and paces it in real time by a
// Clock (injectable, so tests are deterministic):
//
//   - WAV, 8 kHz mono (16-bit PCM or G.711 μ-law): G.711 μ-law, payload
//     type 0, 20 ms (160-byte) packets; 8 kHz mono A-law: PCMA, type 8.
//   - other 16-bit (or 8-bit) PCM WAV: L16 (RFC 3551: big-endian, clock =
//     sample rate, channels interleaved) with a dynamic payload type
//     (RTPOptions.L16PayloadType, default 96), 20 ms packets or fewer
//     samples when 20 ms would not fit RTPOptions.MaxPayload.
//   - Ogg Opus: one RTP packet per Opus packet, payload type 111 (RTPOptions.
//     OpusPayloadType), 48 kHz clock, timestamps from the pages' granule
//     positions.
//   - MP4 (and anything else ffmpeg reads): handed to ffmpeg when installed
//     (its first audio stream as Opus, payload type 111, from ffmpeg's own
//     socket: not the fast path); without ffmpeg, a clear error.
//
// Stats says what was sent (codec, payload type, clock rate, packets).
//
// SendRTPReader streams WAV and Ogg Opus from an io.ReaderAt front to back,
// so playback can start while the file downloads: give it a reader whose
// ReadAt waits for the bytes (and gives up when the fetch does). PlayStream
// plays such a Source (a *client.Stream) with a Target, MP4 and the rest
// through ffmpeg reading it from a loopback HTTP server (with ranges, so
// ffmpeg seeks to an index at the end); PlayWhileVerifying does so while
// the download is verified and stops the playback at once when that fails.
//
// Plug it in: the sender is anything with WriteToUDPAddrPort, so a
// *mediaport.Port (the fast path) or a kernel *net.UDPConn:
//
//	t, err := playback.ParseTarget(flagValue) // "rtp://198.51.100.20:5004" or a command line
//	st, err := t.Play(ctx, path, playback.RTPOptions{Sender: port})
//	// or while it downloads:
//	s, err := manager.Open(ctx, id, nil)
//	st, err := t.PlayWhileVerifying(ctx, s, playback.RTPOptions{Sender: port},
//		func(ctx context.Context) error { _, err := s.Wait(ctx); return err })
package playback
