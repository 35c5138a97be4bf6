package client

import (
	"context"
	"errors"
)

// defaultCheckPlayable stands in for media.CheckPlayable (p2sp/media, being
// written on the p2sporigin branch) until that package is merged: it
// refuses, so that nothing unchecked enters the cache by default.
func defaultCheckPlayable(ctx context.Context, path string) error {
	return errors.New("no playability check built in yet: set Options.CheckPlayable")
}
