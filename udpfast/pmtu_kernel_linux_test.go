package udpfast_test

import (
	"fmt"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
)

// TestKernelRouterLowersPathMTU: the kernel peer routes to a far network
// whose link (a veth pair inside its namespace) has an MTU of 1280; a fast datagram too big for it makes the
// kernel answer with a real ICMP "fragmentation needed" (IPv4) or "packet
// too big" (IPv6), which lowers that destination's path MTU: the next
// datagram of that size goes through netstack, smaller ones stay fast.
func TestKernelRouterLowersPathMTU(t *testing.T) {
	kp := newKernelPeer(t)
	kp.ns.MustIP("link", "add", "far0", "mtu", "1280", "type", "veth", "peer", "name", "far1", "mtu", "1280")
	kp.ns.MustIP("link", "set", "far1", "up")
	kp.ns.MustIP("link", "set", "far0", "up")
	kp.ns.MustIP("addr", "add", "203.0.113.1/24", "dev", "far0")
	kp.ns.MustIP("addr", "add", "2001:db8:1::1/64", "dev", "far0", "nodad")
	for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
		if out, err := kp.ns.Exec("sysctl", "-w", k); err != nil {
			t.Fatalf("sysctl %s: %v: %s", k, err, out)
		}
	}
	for _, r := range []struct{ dst, via string }{
		{"203.0.113.0/24", netnstest.KernelV4.Addr().String()},
		{"2001:db8:1::/64", netnstest.KernelV6.Addr().String()},
	} {
		p := netip.MustParsePrefix(r.dst)
		subnet := tcpip.AddressWithPrefix{Address: stack.AddrFrom(p.Addr()), PrefixLen: p.Bits()}.Subnet()
		kp.st.Netstack().AddRoute(tcpip.Route{Destination: subnet, Gateway: stack.AddrFrom(netip.MustParseAddr(r.via)), NIC: kp.st.NICID(0)})
	}
	for _, v6 := range []bool{false, true} {
		snd, port, far, ipLen := kp.snd4, uint16(rtp), netip.AddrPortFrom(frames.Remote4, sink), 28
		if v6 {
			snd, port, far, ipLen = kp.snd6, rtp+1, netip.AddrPortFrom(frames.Remote6, sink), 48
		}
		send := func(n int) {
			t.Helper()
			if err := snd.Send(make([]byte, n), far); err != nil {
				t.Fatal(err)
			}
		}
		send(100) // resolves the kernel (the gateway)
		kp.waitEntry(port, far, "resolution of the gateway", func(e *policyarp.Entry) bool { return e.State == policyarp.Valid })
		before := snd.Stats()
		send(1400) // fast, and too big for far0
		kp.waitEntry(port, far, "the path MTU from the kernel's ICMP", func(e *policyarp.Entry) bool { return e.PathMTU == 1280 })
		send(1400)         // through netstack now
		send(1280 - ipLen) // fits: fast
		st := snd.Stats()
		if got := st.Fast - before.Fast; got != 2 || st.Fallback(udpfast.ReasonTooBig)-before.Fallback(udpfast.ReasonTooBig) != 1 {
			t.Fatalf("v6=%v: %v (before %v): want the too-big datagram through netstack, the others fast", v6, st, before)
		}
		t.Logf("v6=%v: the kernel router's ICMP lowered the path MTU to 1280: %v", v6, fmt.Sprint(kp.table.Slot(port).Peek(stack.AddrFrom(far.Addr()))))
	}
}
