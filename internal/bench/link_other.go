//go:build !linux

package bench

import (
	"context"
	"errors"
	"io"
)

var errNeedsLinux = errors.New("the real-link benchmark needs Linux (network namespaces, TAP, AF_PACKET)")

func runHelper(context.Context, string, []string, io.Reader, io.Writer) error { return errNeedsLinux }

type linkEnvs struct{}

func newLinkEnvs(Config) (*linkEnvs, error) { return nil, errNeedsLinux }

func (*linkEnvs) open(context.Context, Path, family, int) (Bench, error) { return nil, errNeedsLinux }

func (*linkEnvs) close() error { return nil }
