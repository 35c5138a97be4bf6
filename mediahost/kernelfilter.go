package mediahost

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
)

// PortRange is the ports First to Last, both included.
type PortRange struct{ First, Last uint16 }

func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// KernelFilterOptions say what a KernelFilter keeps from the kernel.
type KernelFilterOptions struct {
	// Interface is the interface the stack and the kernel share (a raw
	// link's). Required.
	Interface string
	// Addrs are the addresses both hold on it (KernelAddrs). At least one.
	Addrs []netip.Addr
	// UDPPorts and TCPPorts are the ports the stack serves on Addrs: the
	// media port range, echo, HTTP.
	UDPPorts, TCPPorts []PortRange
}

// KernelFilter is an nftables table that keeps the host's kernel from
// answering for a stack that shares its address on a raw link (see
// KernelAddrs): in the input hook it drops what arrives on the interface
// for the shared addresses to the stack's UDP and TCP ports, and ICMP and
// ICMPv6 echo requests, which netstack answers, so a ping gets one reply.
// The stack still sees all of it: its AF_PACKET socket takes frames before
// the kernel's IP layer. The kernel keeps everything else (its own
// connections, ARP and NDP, which both answer alike with the interface's
// MAC).
//
// The table is named after the interface, mediastack_IFACE, so Install
// replaces one a crashed process left behind, and two stacks cannot share
// one interface's filter. It needs the nft command and CAP_NET_ADMIN in the
// interface's network namespace.
type KernelFilter struct {
	table string
	rules string
}

// NewKernelFilter writes the rules for opts; it installs nothing.
func NewKernelFilter(opts KernelFilterOptions) (*KernelFilter, error) {
	switch {
	case opts.Interface == "" || strings.ContainsAny(opts.Interface, "\"\\ \t\n"):
		return nil, fmt.Errorf("mediahost: KernelFilterOptions.Interface %q: want an interface name", opts.Interface)
	case len(opts.Addrs) == 0:
		return nil, errors.New("mediahost: KernelFilterOptions.Addrs is empty: no address to keep the kernel off")
	}
	for _, r := range append(opts.UDPPorts[:len(opts.UDPPorts):len(opts.UDPPorts)], opts.TCPPorts...) {
		if r.First == 0 || r.First > r.Last {
			return nil, fmt.Errorf("mediahost: KernelFilterOptions: port range %v: want 1 <= First <= Last", r)
		}
	}
	f := &KernelFilter{table: "mediastack_" + tableSafe(opts.Interface)}
	var b strings.Builder
	fmt.Fprintf(&b, "# mediastack: the kernel keeps off what the user-space stack serves on %s.\n", opts.Interface)
	fmt.Fprintf(&b, "# Remove with: nft delete table inet %s\n", f.table)
	// Declaring the table before deleting it makes the delete succeed when
	// there is none: the file replaces a stale table in one transaction.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", f.table, f.table)
	fmt.Fprintf(&b, "table inet %s {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n", f.table)
	for _, fam := range []struct {
		ip, icmp string
		is       func(netip.Addr) bool
	}{{"ip", "icmp", netip.Addr.Is4}, {"ip6", "icmpv6", netip.Addr.Is6}} {
		var addrs []string
		for _, a := range opts.Addrs {
			if fam.is(a.Unmap()) {
				addrs = append(addrs, a.Unmap().String())
			}
		}
		if len(addrs) == 0 {
			continue
		}
		match := fmt.Sprintf("iifname %q %s daddr { %s }", opts.Interface, fam.ip, strings.Join(addrs, ", "))
		for _, l4 := range []struct {
			proto string
			ports []PortRange
		}{{"udp", opts.UDPPorts}, {"tcp", opts.TCPPorts}} {
			if len(l4.ports) > 0 {
				fmt.Fprintf(&b, "\t\t%s %s dport { %s } drop\n", match, l4.proto, joinRanges(l4.ports))
			}
		}
		fmt.Fprintf(&b, "\t\t%s %s type echo-request drop\n", match, fam.icmp)
	}
	b.WriteString("\t}\n}\n")
	f.rules = b.String()
	return f, nil
}

// Table is the nftables table's name (family inet).
func (f *KernelFilter) Table() string { return f.table }

// Rules is the table as an nft script, for nft -f: what Install loads, to
// print where the nft command is missing.
func (f *KernelFilter) Rules() string { return f.rules }

// ErrNoNft is what Install returns, wrapped, when there is no nft command.
var ErrNoNft = errors.New("the nft command (nftables) is not installed")

// Install loads the table, replacing one of the same name.
func (f *KernelFilter) Install() error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("mediahost: %w (%v)", ErrNoNft, err)
	}
	return f.nft(f.rules)
}

// Remove deletes the table; one already gone is fine.
func (f *KernelFilter) Remove() error {
	return f.nft(fmt.Sprintf("table inet %s\ndelete table inet %s\n", f.table, f.table))
}

// nft runs script with nft -f.
func (f *KernelFilter) nft(script string) error {
	cmd := nftCommand("-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mediahost: nft -f (table inet %s): %v: %s", f.table, err, bytes.TrimSpace(out))
	}
	return nil
}

// tableSafe maps an interface name to what an nft identifier may hold.
func tableSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// joinRanges lists rs as an nft set, sorted and with overlaps merged (nft
// refuses overlapping intervals in a set).
func joinRanges(rs []PortRange) string {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b PortRange) int { return cmp.Compare(a.First, b.First) })
	var s []string
	cur := sorted[0]
	for _, r := range sorted[1:] {
		if int(r.First) <= int(cur.Last)+1 {
			cur.Last = max(cur.Last, r.Last)
			continue
		}
		s = append(s, cur.String())
		cur = r
	}
	return strings.Join(append(s, cur.String()), ", ")
}
