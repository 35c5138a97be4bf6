package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/mediastack/mediastack/calls"
	"github.com/mediastack/mediastack/ng"
	"github.com/mediastack/mediastack/relay"
)

// ngConfig is serve's ng protocol part: --listen-ng.
type ngConfig struct {
	listen string
	// maxCalls bounds the calls at once (--max-calls).
	maxCalls int
	// addrs are the stack's addresses (--addr), the media addresses the
	// SDPs name; set by serve.
	addrs []netip.Addr
}

// ngCalls holds the call registry once started: the relays' OnEnd, made
// before it, reaches it through relayEnded.
type ngCalls struct{ atomic.Pointer[calls.Registry] }

func (c *ngConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.listen, "listen-ng", "", "serve rtpengine's ng control protocol (UDP) on this host `ADDR`, for a SIP proxy's "+
		"rtpengine module (Kamailio: modparam(\"rtpengine\", \"rtpengine_sock\", \"udp:ADDR\")), e.g. 127.0.0.1:2223; "+
		"calls get their ports from --rtp-ports and the stack's --addr in their SDP")
	fs.IntVar(&c.maxCalls, "max-calls", calls.DefaultMaxCalls, "the most calls the ng server holds at once, `N`; an offer beyond it is answered "+
		"\"Parallel session limit reached\" (a SIP proxy then tries another relay). Each call takes 2 ports of --rtp-ports per party, 4 with RTCP")
}

func (c *ngConfig) validate() error {
	if c.listen == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(c.listen); err != nil || port == "" {
		return usageErrorf("--listen-ng %q: want HOST:PORT (e.g. 127.0.0.1:2223)", c.listen)
	}
	if c.maxCalls < 1 {
		return usageErrorf("--max-calls %d: want at least 1", c.maxCalls)
	}
	return nil
}

// relayEnded is relay.Options.OnEnd: a relay that timed out leaves its
// call.
func (c *ngCalls) relayEnded(info relay.Info, reason relay.EndReason) {
	if reg := c.Load(); reg != nil {
		reg.RelayEnded(info, reason)
	}
}

// startNG serves the ng protocol on --listen-ng with calls on svc's relays
// until stop is called.
// Calls learn their peers with --endpoint-learning and --strict-source
// unless a request asks otherwise.
func startNG(svc *relay.Service, holder *ngCalls, c ngConfig, learning relay.Learning, strict bool, log *slog.Logger) (stop func(), err error) {
	if c.listen == "" {
		return func() {}, nil
	}
	reg, err := calls.New(calls.Options{Relays: svc, Addrs: c.addrs, MaxCalls: c.maxCalls, Learning: learning, StrictSource: strict, Log: log})
	if err != nil {
		return nil, fmt.Errorf("--listen-ng: %w", err)
	}
	srv, err := ng.New(ng.Options{Calls: reg, Relays: svc, Log: log})
	if err != nil {
		reg.Close()
		return nil, err
	}
	pc, err := net.ListenPacket("udp", c.listen)
	if err != nil {
		reg.Close()
		return nil, fmt.Errorf("--listen-ng %s: %w", c.listen, err)
	}
	holder.Store(reg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(pc); err != nil {
			log.Error("ng protocol stopped", "err", err)
		}
	}()
	log.Info("ng protocol listening", "addr", pc.LocalAddr().String(), "media_addrs", fmt.Sprint(c.addrs))
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok && ua.IP.IsUnspecified() {
		log.Warn("--listen-ng on a wildcard address: replies may leave from another address than the proxy sent to, which a connected socket (Kamailio's) drops; give a specific address")
	}
	return func() {
		pc.Close()
		<-done
		holder.Store(nil)
		reg.Close()
	}, nil
}

// hostAddrs are the media addresses of the stack's prefixes (--addr): the
// first IPv4 and the first IPv6.
func hostAddrs(prefixes []netip.Prefix) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, p := range prefixes {
		if a := p.Addr().Unmap(); a.Is4() && v4 == nil {
			v4 = []netip.Addr{a}
		} else if a.Is6() && v6 == nil {
			v6 = []netip.Addr{a}
		}
	}
	return append(v4, v6...)
}
