package p2spsim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/mediastack/mediastack/p2sp/client"
	"github.com/mediastack/mediastack/p2sp/origin"
)

// Ports the nodes use.
const (
	HTTPPort       = 80   // the web server's and the file-info server's
	BitTorrentPort = 6881 // every client's and peer's BitTorrent listener
)

// Origin is an origin running on a node: the web server on the node's
// first address, the file-info server on its second (claim 4).
type Origin struct {
	*origin.Origin
	WebURL, InfoURL string
	stop            context.CancelFunc
	served          chan error
	closeOnce       sync.Once
	closeErr        error
}

// StartOrigin publishes opts.Dir from node (which needs Extra ≥ 1): opts'
// WebURL and InfoURL are filled in from the node's addresses of the family
// v6 says. Close it (LAN.Close does not).
func StartOrigin(node *Node, opts origin.Options, v6 bool) (*Origin, error) {
	if len(node.V4) < 2 {
		return nil, fmt.Errorf("p2spsim: origin node %s needs a second address (NodeOptions.Extra)", node.Name)
	}
	web, info := node.AddrPort(0, HTTPPort, v6), node.AddrPort(1, HTTPPort, v6)
	opts.WebURL, opts.InfoURL = "http://"+web.String(), "http://"+info.String()
	o, err := origin.New(opts)
	if err != nil {
		return nil, err
	}
	wl, err := node.Net.Listen(web)
	if err != nil {
		return nil, fmt.Errorf("p2spsim: origin on %s: %w", web, err)
	}
	il, err := node.Net.Listen(info)
	if err != nil {
		wl.Close()
		return nil, fmt.Errorf("p2spsim: origin on %s: %w", info, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	so := &Origin{Origin: o, WebURL: opts.WebURL, InfoURL: opts.InfoURL, stop: stop, served: make(chan error, 1)}
	go func() { so.served <- o.Serve(ctx, wl, il) }()
	return so, nil
}

// Close stops the origin's servers.
func (o *Origin) Close() error {
	o.closeOnce.Do(func() {
		o.stop()
		o.closeErr = <-o.served
	})
	return o.closeErr
}

// NewClient starts a media manager (a client or a peer) on node, its
// BitTorrent listener on the node's first address of the family v6 says:
// opts' Net and Listen are filled in, and Origin when empty. Close it.
func NewClient(node *Node, o *Origin, opts client.Options, v6 bool) (*client.Manager, error) {
	opts.Net = node.Net
	opts.Listen = node.AddrPort(0, BitTorrentPort, v6)
	if opts.Origin == "" {
		opts.Origin = o.WebURL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return client.New(opts)
}
