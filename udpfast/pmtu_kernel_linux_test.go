package udpfast_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
)

// TestKernelRouterLowersPathMTU: the kernel peer routes to a far host (a
// namespace of its own) over a veth pair with an MTU of 1280; a fast
// datagram too big for it makes the kernel router drop it and answer with a
// real ICMP "fragmentation needed" (IPv4) or "packet too big" (IPv6), which
// lowers that destination's path MTU: the next datagram of that size goes
// fast in fragments of at most 1280 bytes, which the router forwards and the
// far host's kernel reassembles, and smaller ones go fast whole.
func TestKernelRouterLowersPathMTU(t *testing.T) {
	kp := newKernelPeer(t)
	kp.ns.MustIP("link", "add", "far0", "mtu", "1280", "type", "veth", "peer", "name", "far1", "mtu", "1280")
	far := netnstest.NewNamespace(t)
	kp.ns.MustIP("link", "set", "dev", "far1", "netns", far.Name)
	if err := far.Address("far1", nil, netip.PrefixFrom(frames.Remote4, 24), netip.PrefixFrom(frames.Remote6, 64)); err != nil {
		t.Fatal(err)
	}
	far.MustIP("route", "add", "default", "via", "203.0.113.1")
	far.MustIP("-6", "route", "add", "default", "via", "2001:db8:1::1")
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
		// A port per family: a dual-stack IPv6 socket cannot share one
		// with the IPv4 socket.
		snd, port, dst, ipLen, proto := kp.snd4, uint16(rtp), netip.AddrPortFrom(frames.Remote4, sink+4), 28, "UDP4-RECV"
		if v6 {
			snd, port, dst, ipLen, proto = kp.snd6, rtp+1, netip.AddrPortFrom(frames.Remote6, sink+5), 48, "UDP6-RECV"
		}
		out := filepath.Join(t.TempDir(), "received")
		far.Start("socat", "-u", fmt.Sprintf("%s:%d", proto, dst.Port()), "CREATE:"+out)
		waitBound(t, far, dst.Port())
		var want []byte // what the far host must receive, in order
		seq := uint64(0)
		send := func(n int) []byte {
			t.Helper()
			p := frames.Seq(make([]byte, n), seq)
			for i := 8; i < n; i++ {
				p[i] = byte(i*13) ^ byte(seq)
			}
			seq++
			if err := snd.Send(p, dst); err != nil {
				t.Fatal(err)
			}
			return p
		}
		want = append(want, send(100)...) // resolves the kernel (the gateway)
		kp.waitEntry(port, dst, "resolution of the gateway", func(e *policyarp.Entry) bool { return e.State == policyarp.Valid })
		before := snd.Stats()
		send(1400) // fast, and too big for far0: the router drops it
		kp.waitEntry(port, dst, "the path MTU from the kernel's ICMP", func(e *policyarp.Entry) bool { return e.PathMTU == 1280 })
		want = append(want, send(1400)...)       // fast, in fragments of at most 1280 bytes
		want = append(want, send(1280-ipLen)...) // fits: fast, whole
		st := snd.Stats()
		if got := st.Fast - before.Fast; got != 3 || st.Fragmented-before.Fragmented != 1 || st.FallbackTotal() != before.FallbackTotal() {
			t.Fatalf("v6=%v: %v (before %v): want every datagram fast, the too-big one in fragments", v6, st, before)
		}
		netnstest.WaitFor(t, netnstest.StateTimeout, "the far host receiving the datagrams", func() error {
			if got, _ := os.ReadFile(out); len(got) < len(want) {
				return fmt.Errorf("received %d of %d bytes: %w", len(got), len(want), netnstest.ErrNotYet)
			}
			return nil
		})
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			t.Fatalf("v6=%v: the far host received %d bytes, not the %d of the datagrams sent (100, 1400 reassembled, %d)", v6, len(got), len(want), 1280-ipLen)
		}
		t.Logf("v6=%v: the kernel router's ICMP lowered the path MTU to 1280: %v; the far host reassembled the 1400-byte datagram", v6, fmt.Sprint(kp.table.Slot(port).Peek(stack.AddrFrom(dst.Addr()))))
	}
}
