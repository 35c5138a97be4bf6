package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/mediastack/mediastack/internal/controlhttp"
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
	token    controlToken
	dscp     int
	arp      policyarp.Options
	ng       ngConfig // ng.go: --listen-ng
	// p2spAPI, set by serve with --p2sp-origin, serves /v1/p2sp/ beside
	// the relays on --control.
	p2spAPI http.Handler
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
	fs.StringVar(&c.control, "control", "", "serve the relay control API (HTTP+JSON, /v1/relays, /healthz; /v1/p2sp/fetches with --p2sp-origin) on this host `ADDR`: PORT or :PORT is 127.0.0.1:PORT; "+
		"an address other hosts can reach needs --control-token")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics (/metrics, /healthz) on this host `ADDR`, with --control's rules (loopback unless --control-token)")
	c.token.registerFlags(fs)
	fs.IntVar(&c.dscp, "dscp", mediaport.DefaultDSCP, "mark every datagram the media ports send (fast and through netstack) with DSCP `N`, 0 to 63: 46 is EF, "+
		"RFC 4594's class for real-time media; 34 AF41 (interactive video); 0 unmarked")
	registerARPFlags(fs, &c.arp)
	c.ng.registerFlags(fs)
	fs.DurationVar(&c.timeout, "timeout", relay.DefaultTimeout, "delete a relay (a call) that received no media at all for this `DURATION` (0: never); --relay relays never time out")
	fs.DurationVar(&c.silentTimeout, "silent-timeout", relay.DefaultSilentTimeout, "the same `DURATION` for a relay whose sides are all on hold (0: never)")
	fs.DurationVar(&c.finalTimeout, "final-timeout", 0, "delete every relay this `DURATION` after it was made, whatever its traffic (0: never)")
	fs.TextVar(&c.learning, "endpoint-learning", relay.LearnDelayed, "how a relay side learns its peer from the media: `MODE` delayed, immediate, heuristic or off (rtpengine's names)")
	fs.BoolVar(&c.strictSource, "strict-source", false, "once a relay side has learned its peer, drop media from any other source (no handover to a new NAT binding)")
}

// dscpOption is --dscp as mediaport.Options.DSCP, whose 0 is the default.
func (c *sidecarConfig) dscpOption() int {
	if c.dscp == 0 {
		return mediaport.DSCPBestEffort
	}
	return c.dscp
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
		}{{"--reflect", c.reflect}, {"--relay", len(c.relays) > 0}, {"--control", c.control != ""}, {"--metrics", c.metrics != ""},
			{"--control-token", c.token.flag != "" || c.token.file != ""}, {"--listen-ng", c.ng.listen != ""}} {
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
	if err := c.token.load(); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		addr *string
	}{{"--control", &c.control}, {"--metrics", &c.metrics}} {
		if *f.addr == "" {
			continue
		}
		addr, err := controlhttp.CheckAddr(*f.addr, c.token.value != "")
		if errors.Is(err, controlhttp.ErrNeedsToken) {
			return usageErrorf("%s %q %v", f.name, *f.addr, err)
		} else if err != nil {
			return usageErrorf("%s %q: %v", f.name, *f.addr, err)
		}
		*f.addr = addr
	}
	if c.token.value != "" && c.control == "" && c.metrics == "" {
		return usageErrorf("--control-token is for --control and --metrics; neither is set")
	}
	if c.dscp < 0 || c.dscp > 63 {
		return usageErrorf("--dscp %d: want a DSCP from 0 to 63 (46: EF)", c.dscp)
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
		"arp_aging", m.Table().Aging(), "arp_refresh", m.Table().Refresh(),
		"timeout", cfg.timeout, "silent_timeout", cfg.silentTimeout, "final_timeout", cfg.finalTimeout,
		"endpoint_learning", cfg.learning.String(), "strict_source", cfg.strictSource)
	for _, srv := range []struct{ name, flag, addr string }{{"control API", "--control", cfg.control}, {"metrics", "--metrics", cfg.metrics}} {
		if srv.addr == "" {
			continue
		}
		var h http.Handler
		if srv.flag == "--control" {
			h = svc.Handler()
			if cfg.p2spAPI != nil {
				mux := http.NewServeMux()
				mux.Handle("/", h)
				mux.Handle("/v1/p2sp/", cfg.p2spAPI)
				h = mux
			}
		} else {
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", metrics.Handler(m, svc))
			h = mux
		}
		server, err := controlhttp.Listen(controlhttp.Options{Addr: srv.addr, Handler: h, Token: cfg.token.value, Name: srv.name, Log: log})
		if err != nil {
			stop()
			return nil, fmt.Errorf("%s %s: %w", srv.flag, srv.addr, err)
		}
		stops = append(stops, server.Close)
	}
	stopNG, err := startNG(svc, ngc, cfg.ng, cfg.learning, cfg.strictSource, log)
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, stopNG)
	return stop, nil
}
