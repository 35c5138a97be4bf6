// Package utp is a stand-in for github.com/anacrolix/go-utp with uTP left out:
// every constructor fails, so a torrent.Client must run with DisableUTP and NoDHT.
package utp

import (
	"context"
	"errors"
	"log/slog"
	"net"
)

type FirewallCallback func(net.Addr) bool

type Option func(*options)

type options struct{ logger *slog.Logger }

func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

type Socket interface {
	net.PacketConn
	Accept() (net.Conn, error)
	Addr() net.Addr
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	SetFirewallCallback(FirewallCallback)
}

// Default names the implementation in error messages.
const Default = "no uTP (stub)"

var ErrDisabled = errors.New("uTP is not built into this binary")

func NewSocket(network, addr string, opts ...Option) (Socket, error) { return nil, ErrDisabled }

func NewSocketFromPacketConn(pc net.PacketConn, opts ...Option) (Socket, error) {
	return nil, ErrDisabled
}
