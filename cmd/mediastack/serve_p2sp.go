package main

import (
	"flag"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
	"github.com/mediastack/mediastack/p2sp/clientapi"
	"github.com/mediastack/mediastack/stack"
)

// serveP2SPConfig is serve's P2SP client (--p2sp-origin, ...): `p2sp
// fetch`'s flags with the prefix "p2sp-", the client on serve's own stack,
// its fetches started on --control (/v1/p2sp/fetches).
type serveP2SPConfig struct {
	clientConfig
}

// serveP2SPFlags are the flags registerFlags adds, for serve's help.
var serveP2SPFlags = func() []string {
	out := make([]string, len(clientFlags))
	for i, f := range clientFlags {
		out[i] = serveP2SPPrefix + f
	}
	return out
}()

const serveP2SPPrefix = "p2sp-"

// defaultP2SPPort is --p2sp-listen's port when only the flag's address is
// left to the stack's.
const defaultP2SPPort = 6881

func (c *serveP2SPConfig) registerFlags(fs *flag.FlagSet) {
	c.clientConfig.registerFlags(fs, serveP2SPPrefix)
	fs.Lookup(serveP2SPPrefix + "origin").Usage += "; fetch P2SP files on serve's own stack, started on --control (POST /v1/p2sp/fetches)"
	fs.Lookup(serveP2SPPrefix + "listen").Usage += " (default: the first --addr, port 6881)"
}

func (c *serveP2SPConfig) enabled() bool { return c.origin != "" }

// validate checks the flags against the sidecar's: the fetches are started
// on its control API.
func (c *serveP2SPConfig) validate(sidecar sidecarConfig, addrs []netip.Prefix) error {
	if c.prefix == "" {
		return nil // not registered: a p2sp command's node, not serve
	}
	if !c.enabled() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"info", c.info != ""}, {"cache", c.cache != ""}, {"listen", c.listen != ""}, {"up-rate", c.upRate != "0"},
			{"down-rate", c.downRate != "0"}, {"stall-timeout", c.stall != client.DefaultStallTimeout}} {
			if f.set {
				return usageErrorf("--%s%s needs --%sorigin URL", serveP2SPPrefix, f.name, serveP2SPPrefix)
			}
		}
		return nil
	}
	if sidecar.control == "" {
		return usageErrorf("--%sorigin needs --control ADDR (fetches are started on the control API, POST /v1/p2sp/fetches)", serveP2SPPrefix)
	}
	var def netip.AddrPort
	if len(addrs) > 0 {
		def = netip.AddrPortFrom(addrs[0].Addr(), defaultP2SPPort)
	}
	return c.clientConfig.validate(def)
}

// start runs the client on st and returns its API's handler and what ends
// the fetches and closes the client; without --p2sp-origin, nothing.
func (c *serveP2SPConfig) start(st *stack.Stack, log *slog.Logger) (http.Handler, func(), error) {
	if !c.enabled() {
		return nil, func() {}, nil
	}
	if err := c.limitReceiveBuffer(st, log); err != nil {
		return nil, nil, err
	}
	m, err := client.New(c.options(p2sp.StackNetwork(st), log))
	if err != nil {
		return nil, nil, err
	}
	api := clientapi.New(m, log)
	log.Info("p2sp client up", "origin", c.origin, "cache", c.cache, "listen", m.Addr().String(), "down_rate", c.down, "up_rate", c.up)
	return api.Handler(), func() {
		api.Close()
		m.Close()
	}, nil
}
