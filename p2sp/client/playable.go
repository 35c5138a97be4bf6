package client

import (
	"context"

	"github.com/mediastack/mediastack/p2sp/media"
)

// defaultCheckPlayable is media.CheckPlayable with ffprobe when it is
// installed, the built-in MP4/WAV/Ogg structure checks otherwise.
func defaultCheckPlayable(ctx context.Context, path string) error {
	return media.CheckPlayable(ctx, path, media.FFprobe(true))
}
