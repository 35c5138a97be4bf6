package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/metrics"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/relay"
)

// sidecarConfig is serve's media part: the fast paths on a port range, the
// reflector, relays, their control API and the metrics.
type sidecarConfig struct {
	rtpPorts string
	reflect  bool
	relays   repeated
	control  string
	metrics  string
	arp      policyarp.Options
	ng       ngConfig // ng.go: --listen-ng
	// Relay lifetimes and endpoint learning, as rtpengine names them.
	timeout, silentTimeout, finalTimeout time.Duration
	learning                             relay.Learning
	strictSource                         bool

	// Set by validate.
	lo, hi     uint16
	relaySpecs []relay.Spec
	warnings   []string // logged when the sidecar starts
}

func (c *sidecarConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.rtpPorts, "rtp-ports", "", "register the UDP port range `LO-HI` (e.g. 20000-20999) on the fast receive and send paths")
	fs.BoolVar(&c.reflect, "reflect", false, "send every datagram received on a registered port back to its source, from the same port (ports no relay holds)")
	fs.Var(&c.relays, "relay", "relay between ports A and B of --rtp-ports, as `A[@IP:PORT]:B[@IP:PORT]`: a side with @IP:PORT sends to that fixed peer, "+
		"one without latches its peer from the first datagram it receives; a relay carries one port pair, so a call's RTP (even ports) "+
		"and its RTCP (the odd ports after them) take two: --relay 20000:20002 --relay 20001:20003 (an odd-port relay alone is warned about)")
	fs.StringVar(&c.control, "control", "", "serve the relay control API (HTTP+JSON, /v1/relays) on this host `ADDR`, e.g. 127.0.0.1:8080")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics (/metrics) on this host `ADDR`, e.g. 127.0.0.1:9090")
	registerARPFlags(fs, &c.arp)
	c.ng.registerFlags(fs)
	fs.DurationVar(&c.timeout, "timeout", relay.DefaultTimeout, "delete a relay (a call) that received no media at all for this `DURATION` (0: never); --relay relays never time out")
	fs.DurationVar(&c.silentTimeout, "silent-timeout", relay.DefaultSilentTimeout, "the same `DURATION` for a relay whose sides are all on hold (0: never)")
	fs.DurationVar(&c.finalTimeout, "final-timeout", 0, "delete every relay this `DURATION` after it was made, whatever its traffic (0: never)")
	fs.TextVar(&c.learning, "endpoint-learning", relay.LearnDelayed, "how a relay side learns its peer from the media: `MODE` delayed, immediate, heuristic or off (rtpengine's names)")
	fs.BoolVar(&c.strictSource, "strict-source", false, "once a relay side has learned its peer, drop media from any other source (no handover to a new NAT binding)")
}

// registerARPFlags registers --arp-aging and --arp-refresh on fs, writing
// into o.
func registerARPFlags(fs *flag.FlagSet, o *policyarp.Options) {
	fs.DurationVar(&o.Aging, "arp-aging", policyarp.DefaultAging,
		"fast-send ARP entries unconfirmed by netstack for this `DURATION` go through netstack once and are re-learnt")
	fs.DurationVar(&o.Refresh, "arp-refresh", policyarp.DefaultRefresh,
		"`INTERVAL` at which fast-send ARP entries in use are re-validated against netstack's neighbour cache (< --arp-aging)")
}

// enabled reports whether serve runs the media fast paths at all.
func (c *sidecarConfig) enabled() bool { return c.rtpPorts != "" }

func (c *sidecarConfig) validate() error {
	if !c.enabled() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"--reflect", c.reflect}, {"--relay", len(c.relays) > 0}, {"--control", c.control != ""}, {"--metrics", c.metrics != ""}, {"--listen-ng", c.ng.listen != ""}} {
			if f.set {
				return usageErrorf("%s needs --rtp-ports LO-HI (the ports it works on)", f.name)
			}
		}
		return nil
	}
	var err error
	if c.lo, c.hi, err = parsePortRange(c.rtpPorts); err != nil {
		return err
	}
	held := map[uint16]string{}
	for _, r := range c.relays {
		spec, err := relay.ParseSpec(r)
		if err != nil {
			return usageErrorf("--relay %q: %v", r, err)
		}
		if spec.Ports[0] == spec.Ports[1] {
			return usageErrorf("--relay %q: A and B must differ", r)
		}
		for _, p := range spec.Ports {
			if p < c.lo || p > c.hi {
				return usageErrorf("--relay %q: port %d is outside --rtp-ports %s", r, p, c.rtpPorts)
			}
			if other, dup := held[p]; dup {
				return usageErrorf("--relay %q: port %d is in --relay %q already", r, p, other)
			}
			held[p] = r
		}
		c.relaySpecs = append(c.relaySpecs, spec)
	}
	c.warnings = rtcpRelayWarnings(c.relaySpecs)
	for i := range c.relaySpecs {
		c.relaySpecs[i].Learning, c.relaySpecs[i].StrictSource, c.relaySpecs[i].Permanent = c.learning, c.strictSource, true
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"--timeout", c.timeout}, {"--silent-timeout", c.silentTimeout}, {"--final-timeout", c.finalTimeout}} {
		if f.d < 0 {
			return usageErrorf("%s %v: want a duration of 0 (never) or more", f.name, f.d)
		}
	}
	for _, f := range []struct{ name, addr string }{{"--control", c.control}, {"--metrics", c.metrics}} {
		if f.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(f.addr); err != nil || port == "" {
			return usageErrorf("%s %q: want HOST:PORT (e.g. 127.0.0.1:8080)", f.name, f.addr)
		}
	}
	if err := c.ng.validate(); err != nil {
		return err
	}
	aging, refresh := c.arp.Aging, c.arp.Refresh
	if aging == 0 {
		aging = policyarp.DefaultAging
	}
	if refresh == 0 {
		refresh = policyarp.DefaultRefresh
	}
	if aging < 0 || refresh < 0 || refresh >= aging {
		return usageErrorf("--arp-refresh %v must be shorter than --arp-aging %v, both positive", refresh, aging)
	}
	return nil
}

// startSidecar runs what the flags ask for on the media ports m (the
// host's, on --rtp-ports). stop shuts the relays and the HTTP servers down;
// call it before closing the host.
func startSidecar(m *mediaport.Manager, cfg sidecarConfig, log *slog.Logger) (stop func(), err error) {
	if !cfg.enabled() {
		return func() {}, nil
	}
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	ngc := new(ngCalls)
	// relay.Options takes 0 for its defaults and a negative duration for
	// never; the flags take 0 for never.
	never := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	svc, err := relay.New(relay.Options{Manager: m, Reflect: cfg.reflect, Log: log,
		Timeout: never(cfg.timeout), SilentTimeout: never(cfg.silentTimeout), FinalTimeout: cfg.finalTimeout,
		Learning: cfg.learning, StrictSource: cfg.strictSource, OnEnd: ngc.relayEnded})
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, svc.Close)
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	for _, spec := range cfg.relaySpecs {
		if _, err := svc.Create(spec); err != nil {
			stop()
			return nil, fmt.Errorf("--relay %s: %w", spec, err)
		}
	}
	log.Info("media fast paths up", "rtp_ports", cfg.rtpPorts, "reflect", cfg.reflect, "relays", len(cfg.relaySpecs),
		"arp_aging", m.Table().Aging(), "arp_refresh", m.Table().Refresh())
	for _, srv := range []struct{ name, flag, addr string }{{"control API", "--control", cfg.control}, {"metrics", "--metrics", cfg.metrics}} {
		if srv.addr == "" {
			continue
		}
		var h http.Handler
		if srv.flag == "--control" {
			h = svc.Handler()
		} else {
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", metrics.Handler(m, svc))
			h = mux
		}
		shutdown, err := serveHTTP(srv.addr, h, log, srv.name)
		if err != nil {
			stop()
			return nil, fmt.Errorf("%s %s: %w", srv.flag, srv.addr, err)
		}
		stops = append(stops, shutdown)
	}
	stopNG, err := startNG(svc, ngc, cfg.ng, cfg.learning, cfg.strictSource, log)
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, stopNG)
	return stop, nil
}

// serveHTTP serves h on the host network at addr (not through the
// user-space stack) until the returned function is called.
func serveHTTP(addr string, h http.Handler, log *slog.Logger, name string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(name+" stopped", "err", err)
		}
	}()
	log.Info(name+" listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
