package netns

import (
	"fmt"
	"net"
	"net/netip"
	"os"
)

// Veth names the two ends of a veth pair.
type Veth struct {
	// Outside is the end left in the caller's own namespace.
	Outside string
	// Inside is the other end: in a namespace (AddPeerVeth), or also in
	// the caller's (AddWire).
	Inside string
}

// PeerVethOptions says how AddPeerVeth sets up a veth pair.
type PeerVethOptions struct {
	// Prefix starts both ends' names (at most 6 bytes): Prefix, 8 random
	// hex digits, then "o" for the outside end and "i" for the inside.
	Prefix string
	// OutsideMAC and InsideMAC are the ends' MACs; nil leaves the kernel's
	// choice.
	OutsideMAC, InsideMAC net.HardwareAddr
	// Inside are the inside end's addresses (the kernel peer's).
	Inside []netip.Prefix
	// DisableTSO turns TCP segmentation offload off on the inside end: a
	// veth hands the other end whole 64 KB TSO frames, which an AF_PACKET
	// reader sized for the MTU cannot take.
	DisableTSO bool
}

// AddPeerVeth makes a veth pair for an AF_PACKET link whose peer is the
// kernel in ns. The outside end stays in the caller's namespace, up, with
// no addresses and the kernel's own IP processing kept off it (no IPv6, no
// forwarding, no ARP replies), so only the stack on the AF_PACKET socket
// answers there. The inside end goes into ns with opts.Inside, up.
// Checksum offload stays on, so AF_PACKET sees frames with checksums the
// kernel has not filled in yet, as it does on a real host. The pair's
// deletion is registered with clean. It returns once both ends carry
// frames (CarrierUp).
func (ns Namespace) AddPeerVeth(clean *Cleanup, opts PeerVethOptions) (Veth, error) {
	base := UniqueName(opts.Prefix)
	v := Veth{Outside: base + "o", Inside: base + "i"}
	// Deleting one end deletes both.
	clean.Add(func() error { return DeleteLink("", v.Outside) })
	args := []string{"link", "add", "dev", v.Outside}
	if opts.OutsideMAC != nil {
		args = append(args, "address", opts.OutsideMAC.String())
	}
	if err := ip(append(args, "type", "veth", "peer", "name", v.Inside)...); err != nil {
		return v, err
	}
	if opts.DisableTSO {
		// Here, before the move: the ioctl finds devices of the caller's
		// namespace only.
		if err := DisableTSO(v.Inside); err != nil {
			return v, fmt.Errorf("turning TSO off on %s: %w", v.Inside, err)
		}
	}
	if err := writeConf(v.Outside, map[string]string{
		"ipv6/conf/%s/disable_ipv6": "1",
		"ipv4/conf/%s/forwarding":   "0",
		"ipv4/conf/%s/arp_ignore":   "8",
	}); err != nil {
		return v, fmt.Errorf("keeping the kernel off %s: %w", v.Outside, err)
	}
	if err := ns.MoveLink(v.Inside); err != nil {
		return v, err
	}
	if err := ns.Address(v.Inside, opts.InsideMAC, opts.Inside...); err != nil {
		return v, err
	}
	if err := ip("link", "set", "dev", v.Outside, "up"); err != nil {
		return v, err
	}
	return v, waitCarrier(Namespace{}, v.Outside, ns, v.Inside)
}

// waitCarrier waits up to StateTimeout for both ends of a veth pair to
// carry frames (CarrierUp).
func waitCarrier(a Namespace, aName string, b Namespace, bName string) error {
	return WaitFor(StateTimeout, fmt.Sprintf("carrier on both ends of the veth pair %s and %s", aName, bName), func() error {
		if err := a.CarrierUp(aName); err != nil {
			return err
		}
		return b.CarrierUp(bName)
	})
}

// AddWire makes a veth pair with both ends in the caller's namespace, up,
// with IPv6 off so the kernel sends nothing on its own: a wire between two
// AF_PACKET sockets. The ends are named prefix, 8 random hex digits, then
// "a" (Outside) and "b" (Inside); the pair's deletion is registered with
// clean. It returns once both ends carry frames.
func AddWire(clean *Cleanup, prefix string) (Veth, error) {
	base := UniqueName(prefix)
	v := Veth{Outside: base + "a", Inside: base + "b"}
	clean.Add(func() error { return DeleteLink("", v.Outside) })
	if err := ip("link", "add", "dev", v.Outside, "type", "veth", "peer", "name", v.Inside); err != nil {
		return v, err
	}
	for _, end := range []string{v.Outside, v.Inside} {
		if err := writeConf(end, map[string]string{"ipv6/conf/%s/disable_ipv6": "1"}); err != nil {
			return v, fmt.Errorf("turning IPv6 off on %s: %w", end, err)
		}
		if err := ip("link", "set", "dev", end, "up"); err != nil {
			return v, err
		}
	}
	return v, waitCarrier(Namespace{}, v.Outside, Namespace{}, v.Inside)
}

// AddVethBetween makes a veth pair with the end aName in a and bName in b,
// both down and without addresses (give them with Namespace.Address). The
// pair's deletion is registered with clean.
func AddVethBetween(clean *Cleanup, a Namespace, aName string, b Namespace, bName string) error {
	clean.Add(func() error { return DeleteLink(a.Name, aName) })
	return ip("link", "add", "dev", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name)
}

// AdoptLink moves the interface name, made by the caller in its own
// namespace (a TAP, say), into ns and gives it mac (unless nil) and addrs,
// as Address does. Its deletion, wherever it is by then, is registered
// with clean first.
func (ns Namespace) AdoptLink(clean *Cleanup, name string, mac net.HardwareAddr, addrs ...netip.Prefix) error {
	clean.Add(func() error { return ns.DeleteLinkAnywhere(name) })
	if err := ns.MoveLink(name); err != nil {
		return err
	}
	return ns.Address(name, mac, addrs...)
}

// DeleteLinkAnywhere deletes the interface name in the caller's namespace
// or in ns, wherever it is; a device already gone is fine.
func (ns Namespace) DeleteLinkAnywhere(name string) error {
	if err := DeleteLink("", name); err != nil {
		return err
	}
	return DeleteLink(ns.Name, name)
}

// writeConf writes the interface dev's settings under /proc/sys/net: each
// key is a path with %s for dev.
func writeConf(dev string, settings map[string]string) error {
	for path, value := range settings {
		if err := os.WriteFile("/proc/sys/net/"+fmt.Sprintf(path, dev), []byte(value), 0o644); err != nil {
			return err
		}
	}
	return nil
}
