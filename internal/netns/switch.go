package netns

import (
	"fmt"
	"net/netip"
	"strconv"
)

// SwitchNode describes one node of a Switched LAN.
type SwitchNode struct {
	// Name names the node (a few letters: it is part of an interface name
	// in the switch's namespace, s-NAME, at most 13 bytes).
	Name string
	// Addrs are the kernel's addresses on the node's interface (IPv6 ones
	// skip duplicate address detection).
	Addrs []netip.Prefix
	// Rate caps the node's egress toward the switch, in bits per second,
	// with a tc tbf on its interface (0: no cap).
	Rate int64
	// Bridged puts the node's interface into a bridge, BridgeName, inside
	// the node's namespace, with no addresses of the kernel's: a TAP
	// enslaved to it later (Bridge) puts a user-space stack on the LAN
	// while the cap on the interface still shapes what it sends.
	Bridged bool
}

// Device names inside a node's namespace.
const (
	NodeDevice = "eth0" // the node's end of its veth
	BridgeName = "br0"  // the bridge of a Bridged node, and the switch's
)

// Switched is a LAN of namespaces: a switch namespace with a bridge, and a
// namespace per node joined to it by a veth pair whose node end, eth0, is
// shaped by a token bucket (tbf: the kernels here have no netem).
type Switched struct {
	Switch Namespace
	Nodes  map[string]Namespace
}

// NewSwitched builds the LAN under names starting with prefix (UniqueName
// it for parallel runs) and registers the deletion of every namespace with
// clean; deleting a namespace deletes the links in it. It returns once
// every node's interface carries frames.
func NewSwitched(clean *Cleanup, prefix string, nodes ...SwitchNode) (*Switched, error) {
	sw, err := Add(clean, prefix+"-sw")
	if err != nil {
		return nil, err
	}
	l := &Switched{Switch: sw, Nodes: map[string]Namespace{}}
	if err := sw.ip("link", "add", BridgeName, "type", "bridge"); err != nil {
		return nil, err
	}
	// Flood multicast (NDP) without snooping state to build up first.
	if err := sw.ip("link", "set", BridgeName, "type", "bridge", "mcast_snooping", "0"); err != nil {
		return nil, err
	}
	if err := sw.ip("link", "set", BridgeName, "up"); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		ns, err := l.addNode(clean, prefix, n)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		l.Nodes[n.Name] = ns
	}
	for name, ns := range l.Nodes {
		if err := WaitFor(StateTimeout, "carrier on "+name+"'s "+NodeDevice, func() error { return ns.CarrierUp(NodeDevice) }); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Switched) addNode(clean *Cleanup, prefix string, n SwitchNode) (Namespace, error) {
	if len(n.Name) == 0 || len(n.Name) > 13 {
		return Namespace{}, fmt.Errorf("name %q: want 1 to 13 bytes", n.Name)
	}
	ns, err := Add(clean, prefix+"-"+n.Name)
	if err != nil {
		return ns, err
	}
	port := "s-" + n.Name
	if err := ns.ip("link", "add", NodeDevice, "type", "veth", "peer", "name", port, "netns", l.Switch.Name); err != nil {
		return ns, err
	}
	if err := l.Switch.ip("link", "set", port, "master", BridgeName, "up"); err != nil {
		return ns, err
	}
	dev := NodeDevice
	if n.Bridged {
		if err := ns.ip("link", "add", BridgeName, "type", "bridge"); err != nil {
			return ns, err
		}
		if err := ns.ip("link", "set", BridgeName, "type", "bridge", "mcast_snooping", "0"); err != nil {
			return ns, err
		}
		if err := ns.ip("link", "set", NodeDevice, "master", BridgeName); err != nil {
			return ns, err
		}
		if err := ns.ip("link", "set", BridgeName, "up"); err != nil {
			return ns, err
		}
		dev = BridgeName
	}
	for _, a := range n.Addrs {
		args := []string{"addr", "add", a.String(), "dev", dev}
		if a.Addr().Is6() {
			args = append(args, "nodad")
		}
		if err := ns.ip(args...); err != nil {
			return ns, err
		}
	}
	if err := ns.ip("link", "set", NodeDevice, "up"); err != nil {
		return ns, err
	}
	if n.Rate > 0 {
		if out, err := ns.Exec(TBFCommand(NodeDevice, n.Rate)...); err != nil {
			return ns, fmt.Errorf("tc tbf on %s: %w: %s", NodeDevice, err, out)
		}
	}
	return ns, nil
}

// Bridge enslaves dev (a TAP a stack opened in the node's namespace) to the
// node's bridge and brings it up.
func (l *Switched) Bridge(node, dev string) error {
	ns, ok := l.Nodes[node]
	if !ok {
		return fmt.Errorf("no node %q", node)
	}
	return ns.ip("link", "set", dev, "master", BridgeName, "up")
}

// TBFCommand is the tc command that caps dev's egress at rate bits per
// second: a token bucket with a burst of 10 ms at the rate (at least 4 KB,
// above rate/HZ) and 50 ms of queue.
func TBFCommand(dev string, rate int64) []string {
	burst := max(rate/8/100, 4096)
	return []string{"tc", "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatInt(rate, 10) + "bit", "burst", strconv.FormatInt(burst, 10), "latency", "50ms"}
}
