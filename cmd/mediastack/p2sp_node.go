package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/p2sp"
)

// nodeConfig is where a p2sp command's sockets live: mediastack's stack on
// a link (--link, --addr, ... as for serve) or, without --link, the host's.
type nodeConfig struct {
	stack   serveConfig
	logging logConfig
	// mediaPort, when set, gives a stack node this media port (the fast
	// path) for playback's RTP.
	mediaPort uint16
}

func (c *nodeConfig) registerFlags(fs *flag.FlagSet) {
	c.stack.registerLinkFlags(fs)
	c.logging.registerFlags(fs)
}

// nodeLinkFlags are the flags registerFlags adds, for the commands' help.
var nodeLinkFlags = []string{"link", "addr", "gateway", "mac", "mtu", "tcp-offload"}

// node is an open network: the p2sp.Network and what closes it.
type node struct {
	net        p2sp.Network
	host       *mediahost.Host // nil on the host's stack
	linkFailed <-chan error    // never fires on the host's stack
	close      func()
}

// open returns the node's network. On the host's stack, outgoing
// connections leave from the addresses of binds (a tracker records the
// announce's source; bans are per address).
func (c *nodeConfig) open(log *slog.Logger, binds ...netip.Addr) (*node, error) {
	if c.stack.link == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"--addr", len(c.stack.addrs) > 0}, {"--gateway", len(c.stack.gateways) > 0}, {"--mac", c.stack.mac != ""}, {"--mtu", c.stack.mtu != 0}} {
			if f.set {
				return nil, usageErrorf("%s needs --link (without it the command runs on the host's stack)", f.name)
			}
		}
		var addrs []netip.Addr
		for _, b := range binds {
			if b.IsValid() && !b.IsUnspecified() {
				addrs = append(addrs, b.Unmap())
			}
		}
		log.Info("on the host's stack", "source_addrs", fmt.Sprint(addrs))
		return &node{net: p2sp.HostNetwork(addrs...), linkFailed: make(chan error), close: func() {}}, nil
	}
	opts, err := c.stack.validate()
	if err != nil {
		return nil, err
	}
	removeKernelFilter, err := guardHostAddress(opts, c.stack, log)
	if err != nil {
		return nil, err
	}
	if c.mediaPort != 0 {
		opts.Ports = mediaport.Options{PortMin: c.mediaPort, PortMax: c.mediaPort}
	}
	linkFailed := make(chan error, 1)
	opts.OnLinkError = func(err error) {
		select {
		case linkFailed <- fmt.Errorf("link %s failed: %w", c.stack.link, err):
		default:
		}
	}
	host, err := mediahost.New(opts)
	if err != nil {
		removeKernelFilter()
		return nil, err
	}
	logBuild(log)
	log.Info("stack up", "link", c.stack.link, "mac", host.MAC().String(), "mtu", host.MTU(), "addrs", []string(c.stack.addrs), "gateways", []string(c.stack.gateways))
	return &node{net: p2sp.StackNetwork(host.Stack()), host: host, linkFailed: linkFailed, close: func() {
		host.Close()
		removeKernelFilter()
	}}, nil
}
