package mediahost_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/mediahost"
)

func TestKernelFilterRules(t *testing.T) {
	f, err := mediahost.NewKernelFilter(mediahost.KernelFilterOptions{
		Interface: "eth-1",
		Addrs:     []netip.Addr{netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("::ffff:198.51.100.3")},
		UDPPorts:  []mediahost.PortRange{{20000, 20999}, {7, 7}, {20500, 21000}},
		TCPPorts:  []mediahost.PortRange{{80, 80}, {7, 7}, {8, 8}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Table(), "mediastack_eth_1"; got != want {
		t.Errorf("Table() = %q, want %q", got, want)
	}
	want := `# mediastack: the kernel keeps off what the user-space stack serves on eth-1.
# Remove with: nft delete table inet mediastack_eth_1
table inet mediastack_eth_1
delete table inet mediastack_eth_1
table inet mediastack_eth_1 {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "eth-1" ip daddr { 198.51.100.2, 198.51.100.3 } udp dport { 7, 20000-21000 } drop
		iifname "eth-1" ip daddr { 198.51.100.2, 198.51.100.3 } tcp dport { 7-8, 80 } drop
		iifname "eth-1" ip daddr { 198.51.100.2, 198.51.100.3 } icmp type echo-request drop
		iifname "eth-1" ip6 daddr { 2001:db8::2 } udp dport { 7, 20000-21000 } drop
		iifname "eth-1" ip6 daddr { 2001:db8::2 } tcp dport { 7-8, 80 } drop
		iifname "eth-1" ip6 daddr { 2001:db8::2 } icmpv6 type echo-request drop
	}
}
`
	if diff := cmp.Diff(want, f.Rules()); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
}

func TestKernelFilterOptionsValidated(t *testing.T) {
	a := []netip.Addr{netip.MustParseAddr("198.51.100.2")}
	for name, opts := range map[string]mediahost.KernelFilterOptions{
		"no interface":   {Addrs: a},
		"quote in name":  {Interface: `x"y`, Addrs: a},
		"no address":     {Interface: "eth0"},
		"port 0":         {Interface: "eth0", Addrs: a, UDPPorts: []mediahost.PortRange{{0, 10}}},
		"reversed range": {Interface: "eth0", Addrs: a, TCPPorts: []mediahost.PortRange{{10, 9}}},
	} {
		if _, err := mediahost.NewKernelFilter(opts); err == nil {
			t.Errorf("%s: NewKernelFilter(%+v) succeeded, want an error", name, opts)
		}
	}
}
