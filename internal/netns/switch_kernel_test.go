package netns_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestSwitched builds a two-node switched LAN with capped egress and checks
// that the nodes reach each other over both families, the caps are in
// place, and everything is gone after the cleanup.
func TestSwitched(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTools(t, "tc", "ping")
	var clean netns.Cleanup
	prefix := netns.UniqueName("mst")
	l, err := netns.NewSwitched(&clean, prefix,
		netns.SwitchNode{Name: "a", Rate: 8_000_000, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/24"), netip.MustParsePrefix("2001:db8:100::10/64")}},
		netns.SwitchNode{Name: "b", Rate: 8_000_000, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24"), netip.MustParsePrefix("2001:db8:100::11/64")}},
		netns.SwitchNode{Name: "c", Bridged: true})
	if err != nil {
		clean.Run()
		t.Fatal(err)
	}
	for _, to := range []string{"198.51.100.11", "2001:db8:100::11"} {
		if err := netns.WaitFor(netns.StateTimeout, "a pinging "+to, func() error { return l.Nodes["a"].Ping(netip.MustParseAddr(to)) }); err != nil {
			t.Error(err)
		}
	}
	out, err := l.Nodes["b"].Exec("tc", "qdisc", "show", "dev", netns.NodeDevice)
	if err != nil || !strings.Contains(out, "tbf") || !strings.Contains(out, "rate 8Mbit") {
		t.Errorf("b's qdisc: %v: %q, want a tbf at 8Mbit", err, out)
	}
	if out, err := l.Nodes["c"].IP("-o", "link", "show", "master", netns.BridgeName); err != nil || !strings.Contains(out, netns.NodeDevice) {
		t.Errorf("c's bridge ports: %v: %q, want %s", err, out, netns.NodeDevice)
	}
	if err := clean.Run(); err != nil {
		t.Fatal(err)
	}
	if out, _ := netns.Run("ip", "netns", "list"); strings.Contains(out, prefix) {
		t.Errorf("namespaces left after the cleanup:\n%s", out)
	}
}
