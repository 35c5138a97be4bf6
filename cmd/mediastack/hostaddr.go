package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/mediastack/mediastack/mediahost"
)

// hostAddrConfig is serve's answer to an --addr the kernel holds too on
// the link's interface (see mediahost.KernelAddrs).
type hostAddrConfig struct {
	share bool
}

func (c *hostAddrConfig) registerFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.share, "share-host-address", false,
		"on raw:IFACE, let the stack take an --addr the host also holds on IFACE: serve installs nftables rules (table inet mediastack_IFACE) that keep the kernel off the stack's ports and pings, and removes them at exit")
}

// guardHostAddress refuses an --addr the kernel holds on the link's
// interface or, on a raw link with --share-host-address, installs the
// kernel filter for it; remove takes the filter out again.
func guardHostAddress(opts mediahost.Options, cfg serveConfig, log *slog.Logger) (remove func(), err error) {
	none := func() {}
	if cfg.hostAddr.share && opts.Link.Kind != mediahost.Raw {
		return nil, usageErrorf("--share-host-address is for raw:IFACE links; on %s the kernel's end is another host: give the stack an address of its own", opts.Link)
	}
	shared, err := mediahost.KernelAddrs(opts.Link, opts.Addrs)
	if err != nil || len(shared) == 0 {
		if err == nil && cfg.hostAddr.share {
			log.Info("--share-host-address: the host holds none of the stack's addresses on the interface; no rules installed", "link", opts.Link.String())
		}
		return none, err
	}
	list := joinAddrs(shared)
	switch {
	case opts.Link.Kind == mediahost.TAP:
		return nil, usageErrorf("%s is already the kernel's address on its end of %s, so the kernel keeps that traffic and the stack is unreachable: give the stack another address in the TAP's subnet (--addr)",
			list, opts.Link)
	case !cfg.hostAddr.share:
		return nil, usageErrorf("%s is also the host's address on %s, so the kernel would answer beside the stack (duplicate pings, its port unreachable reaching media peers first): give the stack an address of its own (--addr), or pass --share-host-address to keep the kernel off the stack's ports with nftables",
			list, opts.Link.Name)
	}
	if ifc, err := net.InterfaceByName(opts.Link.Name); err == nil && opts.MAC != nil && !bytes.Equal(opts.MAC, ifc.HardwareAddr) {
		return nil, usageErrorf("--share-host-address with --mac %v: the kernel answers ARP and NDP for %s with %s's MAC %v, so peers would send to either; leave --mac out",
			opts.MAC, list, opts.Link.Name, ifc.HardwareAddr)
	}
	f, err := mediahost.NewKernelFilter(mediahost.KernelFilterOptions{
		Interface: opts.Link.Name, Addrs: shared, UDPPorts: cfg.udpPorts(), TCPPorts: cfg.tcpPorts(),
	})
	if err != nil {
		return nil, err
	}
	if err := f.Install(); err != nil {
		if errors.Is(err, mediahost.ErrNoNft) {
			return nil, fmt.Errorf("--share-host-address: %v; install nftables (e.g. apt-get install nftables) and run again; the rules serve loads (nft -f FILE) are:\n%s", err, f.Rules())
		}
		return nil, fmt.Errorf("--share-host-address: %w (needs CAP_NET_ADMIN); the rules were:\n%s", err, f.Rules())
	}
	log.Info("sharing the host's address: the kernel keeps off the stack's ports", "addrs", list, "interface", opts.Link.Name, "nft_table", "inet "+f.Table())
	return func() {
		if err := f.Remove(); err != nil {
			log.Error("removing the kernel filter", "err", err, "fix", "nft delete table inet "+f.Table())
			return
		}
		log.Info("kernel filter removed", "nft_table", "inet "+f.Table())
	}, nil
}

// udpPorts are the UDP ports the stack serves: the media ports and echo.
func (cfg *serveConfig) udpPorts() []mediahost.PortRange {
	var ports []mediahost.PortRange
	if cfg.sidecar.enabled() {
		ports = append(ports, mediahost.PortRange{First: cfg.sidecar.lo, Last: cfg.sidecar.hi})
	}
	if cfg.echo {
		ports = append(ports, mediahost.PortRange{First: 7, Last: 7})
	}
	return ports
}

// tcpPorts are the TCP ports the stack serves: echo and HTTP.
func (cfg *serveConfig) tcpPorts() []mediahost.PortRange {
	var ports []mediahost.PortRange
	if cfg.echo {
		ports = append(ports, mediahost.PortRange{First: 7, Last: 7})
	}
	if cfg.httpRoot != "" {
		ports = append(ports, mediahost.PortRange{First: uint16(cfg.httpPort), Last: uint16(cfg.httpPort)})
	}
	return ports
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
