package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/echo"
	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/mediaport"
)

type serveConfig struct {
	link     string
	addrs    repeated
	gateways repeated
	mac      string
	mtu      uint
	vlan     uint
	echo     bool
	pcapFile string
	sidecar  sidecarConfig   // sidecar.go: --rtp-ports, --reflect, --relay, --control, --metrics, --arp-*
	hostAddr hostAddrConfig  // hostaddr.go: --share-host-address
	p2sp     serveP2SPConfig // serve_p2sp.go: --p2sp-origin, --p2sp-cache, ...
	logging  logConfig       // logflags.go: --log-level, --log-format

	tcpOffloadMode string // serve_http.go
	httpRoot       string
	httpPort       uint
}

func runServe(args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("serve", serveHelp, stdout)
	cfg.registerLinkFlags(fs)
	fs.UintVar(&cfg.vlan, "vlan", 0, "802.1Q VLAN `ID` (1-4094) of the link: frames go out tagged, only that VLAN's come in (default: untagged)")
	fs.BoolVar(&cfg.echo, "echo", false, "run UDP and TCP echo services on port 7 through netstack sockets")
	fs.StringVar(&cfg.pcapFile, "pcap", "", "record every frame the link sends or receives to this pcap `FILE`")
	cfg.sidecar.registerFlags(fs)
	cfg.hostAddr.registerFlags(fs)
	cfg.p2sp.registerFlags(fs)
	cfg.logging.registerFlags(fs)
	fs.StringVar(&cfg.httpRoot, "http-root", "", "serve this `DIR` over HTTP (GET, HEAD, Range) from the user-space stack")
	fs.UintVar(&cfg.httpPort, "http-port", 80, "the `PORT` of the --http-root service")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := cfg.logging.logger(stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log)
}

// registerLinkFlags registers the flags that put a stack on a link:
// --link, --addr, --gateway, --mac, --mtu, --tcp-offload (serve and the
// p2sp commands).
func (cfg *serveConfig) registerLinkFlags(fs *flag.FlagSet) {
	fs.StringVar(&cfg.link, "link", "", "link to run on: `tap:NAME|raw:IFACE`, a TAP device created or attached to, or AF_PACKET on an existing interface")
	fs.Var(&cfg.addrs, "addr", "an address of the stack in `CIDR` form, IPv4 or IPv6")
	fs.Var(&cfg.gateways, "gateway", "a default gateway `IP`, at most one IPv4 and one IPv6")
	fs.StringVar(&cfg.mac, "mac", "", "the stack's `MAC` address (default: random locally administered for tap, the interface's own for raw)")
	fs.UintVar(&cfg.mtu, "mtu", 0, "link MTU, `N` bytes (default: 1500 for tap, the interface's for raw)")
	fs.StringVar(&cfg.tcpOffloadMode, "tcp-offload", "auto", tcpOffloadFlagUsage)
}

// validate checks the flags and turns them into the host's options.
func (cfg *serveConfig) validate() (mediahost.Options, error) {
	var opts mediahost.Options
	if cfg.link == "" {
		return opts, usageErrorf("--link is required (tap:NAME or raw:IFACE)")
	}
	link, err := mediahost.ParseLink(cfg.link)
	if err != nil {
		return opts, usageErrorf("--link: %v", err)
	}
	opts.Link = link
	if len(cfg.addrs) == 0 {
		return opts, usageErrorf("at least one --addr CIDR is required (e.g. --addr 198.51.100.2/24)")
	}
	for _, a := range cfg.addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return opts, usageErrorf("--addr %q is not in CIDR form (e.g. 198.51.100.2/24 or 2001:db8::2/64)", a)
		}
		opts.Addrs = append(opts.Addrs, p)
	}
	for _, g := range cfg.gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return opts, usageErrorf("--gateway %q is not an IP address", g)
		}
		opts.Gateways = append(opts.Gateways, a)
	}
	if cfg.mac != "" {
		hw, err := net.ParseMAC(cfg.mac)
		if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			return opts, usageErrorf("--mac %q is not a unicast Ethernet address (e.g. 02:00:5e:00:53:01)", cfg.mac)
		}
		opts.MAC = hw
	}
	if cfg.mtu != 0 && (cfg.mtu < 1280 || cfg.mtu > 65535) {
		return opts, usageErrorf("--mtu %d out of range [1280, 65535]", cfg.mtu)
	}
	opts.MTU = uint32(cfg.mtu)
	if cfg.vlan > 4094 {
		return opts, usageErrorf("--vlan %d is not a VLAN ID (1-4094)", cfg.vlan)
	}
	opts.VLAN = uint16(cfg.vlan)
	if opts.TCPOffload, err = cfg.tcpOffload(link.Kind); err != nil {
		return opts, err
	}
	if err := cfg.validateHTTP(); err != nil {
		return opts, err
	}
	if err := cfg.sidecar.validate(); err != nil {
		return opts, err
	}
	if err := cfg.p2sp.validate(cfg.sidecar, opts.Addrs); err != nil {
		return opts, err
	}
	if cfg.sidecar.enabled() {
		opts.Ports = mediaport.Options{PortMin: cfg.sidecar.lo, PortMax: cfg.sidecar.hi, ARP: cfg.sidecar.arp, DSCP: cfg.sidecar.dscpOption()}
	}
	return opts, nil
}

// serve runs the stack until ctx is done or the link fails.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	opts, err := cfg.validate()
	if err != nil {
		return err
	}
	opts.Ports.ARP.Logger = log // neighbour MAC changes the fast path follows
	removeKernelFilter, err := guardHostAddress(opts, cfg, log)
	if err != nil {
		return err
	}
	defer removeKernelFilter()
	if cfg.pcapFile != "" {
		f, err := os.Create(cfg.pcapFile)
		if err != nil {
			return fmt.Errorf("--pcap: %w", err)
		}
		defer f.Close()
		if opts.Capture, err = pcap.NewWriter(f, tcpip.NewStdClock(), 0); err != nil {
			return fmt.Errorf("--pcap: %w", err)
		}
	}

	linkFailed := make(chan error, 1)
	opts.OnLinkError = func(err error) {
		select {
		case linkFailed <- err:
		default:
		}
	}
	host, err := mediahost.New(opts)
	if err != nil {
		return err
	}
	var services sync.WaitGroup
	// Closing the stack aborts open echo connections; only then can their
	// goroutines be waited for.
	defer services.Wait()
	defer host.Close()
	st := host.Stack()
	logBuild(log)
	log.Info("stack up", "link", cfg.link, "vlan", cfg.vlan, "mac", host.MAC().String(), "mtu", host.MTU(), "addrs", []string(cfg.addrs), "gateways", []string(cfg.gateways))

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

	p2spAPI, closeP2SP, err := cfg.p2sp.start(st, log)
	if err != nil {
		return err
	}
	defer closeP2SP() // after the control API stops
	cfg.sidecar.p2spAPI = p2spAPI

	cfg.sidecar.ng.addrs = hostAddrs(opts.Addrs) // ng.go: the SDPs' media addresses
	stopSidecar, err := startSidecar(host.Ports(), cfg.sidecar, log)
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
