package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/echo"
	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

type serveConfig struct {
	link     string
	addrs    repeated
	gateways repeated
	mac      string
	mtu      uint
	echo     bool
	pcapFile string
	sidecar  sidecarConfig // sidecar.go: --rtp-ports, --reflect, --relay, --control, --metrics, --arp-*

	tcpOffloadMode string // serve_http.go
	httpRoot       string
	httpPort       uint
}

func runServe(args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("serve", "serve --link tap:NAME|raw:IFACE --addr CIDR [--addr CIDR ...] [--gateway IP ...] [--mac MAC] [--mtu N] [--echo] [--pcap FILE] [--tcp-offload auto|off|soft|vnet] [--http-root DIR [--http-port N]]", stdout)
	fs.StringVar(&cfg.link, "link", "", "link to run on: tap:NAME (create or attach a TAP device) or raw:IFACE (AF_PACKET on an existing interface)")
	fs.Var(&cfg.addrs, "addr", "an address of the stack in CIDR form, IPv4 or IPv6 (repeatable)")
	fs.Var(&cfg.gateways, "gateway", "a default gateway, at most one IPv4 and one IPv6 (repeatable)")
	fs.StringVar(&cfg.mac, "mac", "", "the stack's MAC address (default: random locally administered for tap, the interface's own for raw)")
	fs.UintVar(&cfg.mtu, "mtu", 0, "link MTU (default: 1500 for tap, the interface's for raw)")
	fs.BoolVar(&cfg.echo, "echo", false, "run UDP and TCP echo services on port 7 through netstack sockets")
	fs.StringVar(&cfg.pcapFile, "pcap", "", "record every frame the link sends or receives to this pcap file")
	cfg.sidecar.registerFlags(fs)
	fs.StringVar(&cfg.tcpOffloadMode, "tcp-offload", "auto", tcpOffloadFlagUsage)
	fs.StringVar(&cfg.httpRoot, "http-root", "", "serve this directory over HTTP (GET, HEAD, Range) from the user-space stack")
	fs.UintVar(&cfg.httpPort, "http-port", 80, "the port of the --http-root service")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log)
}

// linkSpec is a parsed --link value.
type linkSpec struct{ kind, name string }

func parseLinkSpec(s string) (linkSpec, error) {
	kind, name, ok := strings.Cut(s, ":")
	switch {
	case s == "":
		return linkSpec{}, usageErrorf("--link is required (tap:NAME or raw:IFACE)")
	case !ok || name == "":
		return linkSpec{}, usageErrorf("--link %q: want tap:NAME or raw:IFACE", s)
	case kind != "tap" && kind != "raw":
		return linkSpec{}, usageErrorf("--link %q: unknown link kind %q (want tap:NAME or raw:IFACE)", s, kind)
	}
	return linkSpec{kind, name}, nil
}

func (cfg *serveConfig) validate() (linkSpec, tcpip.LinkAddress, error) {
	spec, err := parseLinkSpec(cfg.link)
	if err != nil {
		return spec, "", err
	}
	if len(cfg.addrs) == 0 {
		return spec, "", usageErrorf("at least one --addr CIDR is required (e.g. --addr 198.51.100.2/24)")
	}
	for _, a := range cfg.addrs {
		if _, err := netip.ParsePrefix(a); err != nil {
			return spec, "", usageErrorf("--addr %q is not in CIDR form (e.g. 198.51.100.2/24 or 2001:db8::2/64)", a)
		}
	}
	for _, g := range cfg.gateways {
		if _, err := netip.ParseAddr(g); err != nil {
			return spec, "", usageErrorf("--gateway %q is not an IP address", g)
		}
	}
	var mac tcpip.LinkAddress
	if cfg.mac != "" {
		hw, err := net.ParseMAC(cfg.mac)
		if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			return spec, "", usageErrorf("--mac %q is not a unicast Ethernet address (e.g. 02:00:5e:00:53:01)", cfg.mac)
		}
		mac = tcpip.LinkAddress(hw)
	}
	if cfg.mtu != 0 && (cfg.mtu < 1280 || cfg.mtu > 65535) {
		return spec, "", usageErrorf("--mtu %d out of range [1280, 65535]", cfg.mtu)
	}
	if err := cfg.sidecar.validate(); err != nil {
		return spec, "", err
	}
	return spec, mac, nil
}

// serve runs the stack until ctx is done or the link fails.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	spec, mac, err := cfg.validate()
	if err != nil {
		return err
	}
	offloadOpts, err := cfg.tcpOffload(spec.kind)
	if err != nil {
		return err
	}
	offload, err := tcpoffload.New(offloadOpts) // nil for off
	if err != nil {
		return err
	}
	var capture *pcap.Writer
	if cfg.pcapFile != "" {
		f, err := os.Create(cfg.pcapFile)
		if err != nil {
			return fmt.Errorf("--pcap: %w", err)
		}
		defer f.Close()
		if capture, err = pcap.NewWriter(f, tcpip.NewStdClock(), 0); err != nil {
			return fmt.Errorf("--pcap: %w", err)
		}
	}

	linkFailed := make(chan error, 1)
	onReadError := func(err error) {
		select {
		case linkFailed <- err:
		default:
		}
	}
	var ep tcpipstack.LinkEndpoint
	switch spec.kind {
	case "tap":
		ep, err = tap.New(tap.Options{Name: spec.name, MAC: mac, MTU: uint32(cfg.mtu), Capture: capture, OnReadError: onReadError, TCPOffload: offload})
	case "raw":
		ep, err = raw.New(raw.Options{Interface: spec.name, MAC: mac, MTU: uint32(cfg.mtu), Capture: capture, OnReadError: onReadError, TCPOffload: offload})
	}
	if err != nil {
		return err
	}
	st, err := stack.New(stack.Options{
		NICs:     []stack.NICOptions{{Name: spec.name, Link: ep, Addrs: cfg.addrs}},
		Gateways: cfg.gateways,
	})
	if err != nil {
		ep.Close()
		return err
	}
	var services sync.WaitGroup
	// Closing the stack aborts open echo connections; only then can their
	// goroutines be waited for.
	defer services.Wait()
	defer st.Close()
	log.Info("stack up", "link", cfg.link, "mac", net.HardwareAddr(ep.LinkAddress()).String(), "mtu", ep.MTU(), "addrs", []string(cfg.addrs), "gateways", []string(cfg.gateways))

	if cfg.echo {
		var addrs []netip.AddrPort
		for _, cidr := range cfg.addrs {
			addrs = append(addrs, netip.AddrPortFrom(netip.MustParsePrefix(cidr).Addr(), 7))
		}
		svc, err := echo.Start(st, addrs)
		if err != nil {
			return err
		}
		defer svc.Close()
		log.Info("echo service", "addrs", fmt.Sprint(addrs))
	}

	httpClosers, err := startHTTP(st, cfg, log, &services)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range httpClosers {
			c.Close()
		}
	}()

	stopSidecar, err := startSidecar(st, cfg.sidecar, log)
	if err != nil {
		return err
	}
	defer stopSidecar()

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", "signal")
		return nil
	case err := <-linkFailed:
		log.Error("link failed", "link", cfg.link, "err", err)
		return fmt.Errorf("link %s failed: %w", cfg.link, err)
	}
}
