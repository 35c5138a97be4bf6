// Package media tells what a media file is and whether a player can use it:
// the "playable" step of the P2SP client's verification (seed 002, claim 7
// step 4) and the media type and duration in the origin's file records.
//
// Probe identifies MP4 (ISO BMFF), WAV (RIFF/WAVE) and Ogg (Opus, Vorbis,
// FLAC, Speex, Theora) by their structure, not their name, and returns the
// media type and duration. CheckPlayable runs the same structure checks
// (every box, chunk and page inside the file, the MP4 index present, every
// Ogg page's CRC, the stream ended) and, with the FFprobe option when
// ffprobe is installed, asks ffprobe as well. Errors name what is wrong and
// where ("mp4: mdat box at offset 40 claims 1000000 bytes, 812 left").
//
// Plug it in:
//
//	info, err := media.Probe(path)              // origin: the record's media type and duration
//	err = media.CheckPlayable(ctx, path)        // client: before a file enters the cache
//	err = media.CheckPlayable(ctx, path, media.FFprobe(true))
//
// A file in none of these formats gives ErrUnknownFormat (test with
// errors.Is): callers that also deliver other files decide what that means.
//
// The parsers behind Probe are exported for the playback component: ParseWAV
// (format and where the samples are) and OggReader (pages with verified
// CRCs, and packets with their granule positions). They read through an
// io.ReaderAt, bound every length by the file's size, and never panic on
// garbage (FuzzProbe, FuzzOggPackets).
package media
