//go:build linux

package fastfilter_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/stack"
)

// hangGuard bounds waits for things that must happen; it turns a hang into a
// failure and measures nothing.
const hangGuard = netnstest.StateTimeout

// TestKernelPeer puts the Linux kernel on the other end of a TAP: it sends
// UDP datagrams with socat to a registered RTP/RTCP pair, one of them too big
// for the MTU so the kernel fragments it. The plain ones must arrive through
// the fast lane, the fragmented one through netstack, all in the ring; ping
// and TCP must keep working through netstack meanwhile.
func TestKernelPeer(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "socat", "ping")
	ns := netnstest.NewNamespace(t)
	name := netnstest.UniqueName("mst")
	ep, err := tap.New(tap.Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	ns.AdoptLink(name)
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{
		Name:  name,
		Link:  ep,
		Addrs: []string{netnstest.StackV4.String(), netnstest.StackV6.String()},
	}}})
	if err != nil {
		ep.Close()
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f, err := fastfilter.New(fastfilter.Options{Stack: st.Netstack(), NIC: st.NICID(0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ep.SetFrameHook(f.Hook)
	t.Cleanup(func() { ep.SetFrameHook(nil) })
	ring := newRing(t, fastfilter.RingOptions{})
	reg, err := f.Register(rtpPort, rtpPort+1, ring.Receive)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	stackV4, stackV6 := netnstest.StackV4.Addr(), netnstest.StackV6.Addr()
	type datagram struct {
		to      string // socat address
		dst     netip.AddrPort
		payload []byte
		big     bool
	}
	var sends []datagram
	for i := range 5 {
		sends = append(sends,
			datagram{fmt.Sprintf("UDP4-SENDTO:%s:%d", stackV4, rtpPort), netip.AddrPortFrom(stackV4, rtpPort), payloadOf(fmt.Sprintf("kernel v4 %d", i), 172), false},
			datagram{fmt.Sprintf("UDP6-SENDTO:[%s]:%d", stackV6, rtpPort), netip.AddrPortFrom(stackV6, rtpPort), payloadOf(fmt.Sprintf("kernel v6 %d", i), 172), false})
	}
	sends = append(sends,
		datagram{fmt.Sprintf("UDP4-SENDTO:%s:%d", stackV4, rtpPort+1), netip.AddrPortFrom(stackV4, rtpPort+1), payloadOf("kernel v4 fragmented", 3000), true},
		datagram{fmt.Sprintf("UDP6-SENDTO:[%s]:%d", stackV6, rtpPort+1), netip.AddrPortFrom(stackV6, rtpPort+1), payloadOf("kernel v6 fragmented", 3000), true})

	buf := make([]byte, 4096)
	for _, s := range sends {
		// One socat run writes stdin as one datagram (it reads up to 8 KiB
		// at a time; the payload is a single pipe write).
		if out, err := ns.ExecInput(s.payload, "socat", "-u", "-b", "8192", "STDIN", s.to); err != nil {
			t.Fatalf("socat to %s: %v: %s", s.to, err, out)
		}
		n, info, err := ring.ReadPacket(buf, time.Now().Add(hangGuard))
		if err != nil {
			t.Fatalf("waiting for the datagram sent to %v: %v (counters %+v)", s.dst, err, f.Counters())
		}
		if !bytes.Equal(buf[:n], s.payload) || info.Dst != s.dst || info.ViaNetstack != s.big {
			t.Errorf("got %d bytes %.20q to %v (via netstack %v); want %d bytes %.20q to %v (via netstack %v)",
				n, buf[:n], info.Dst, info.ViaNetstack, len(s.payload), s.payload, s.dst, s.big)
		}
		if want := netnstest.KernelV4.Addr(); s.dst.Addr().Is4() && info.Src.Addr() != want {
			t.Errorf("source %v, want %v", info.Src, want)
		}
	}
	rtp, rtcp := reg.PortCounters(rtpPort), reg.PortCounters(rtpPort+1)
	t.Logf("RTP port: %+v", rtp)
	t.Logf("RTCP port: %+v", rtcp)
	if rtp.FastDelivered != 10 || rtp.NetstackDelivered != 0 {
		t.Errorf("RTP port: %d fast, %d via netstack; want 10 fast", rtp.FastDelivered, rtp.NetstackDelivered)
	}
	if rtcp.FastDelivered != 0 || rtcp.NetstackDelivered != 2 {
		t.Errorf("RTCP port: %d fast, %d via netstack; want the 2 fragmented datagrams via netstack", rtcp.FastDelivered, rtcp.NetstackDelivered)
	}
	if d := f.Counters().Dropped; d.Total() != 0 {
		t.Errorf("drops: %+v", d)
	}

	// ping and TCP go through netstack, untouched by the filter.
	for _, addr := range []string{stackV4.String(), stackV6.String()} {
		if out, err := ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "5", addr); err != nil {
			t.Errorf("ping %s: %v\n%s", addr, err, out)
		}
	}
	checkTCP(t, st, ns, netip.AddrPortFrom(stackV4, 5001), fmt.Sprintf("TCP4:%s:5001", stackV4))
	checkTCP(t, st, ns, netip.AddrPortFrom(stackV6, 5001), fmt.Sprintf("TCP6:[%s]:5001", stackV6))
	if c := f.Counters(); c.Passed.NotUDP == 0 {
		t.Errorf("counters %+v: the filter saw no ICMP or TCP to pass on", c)
	}
}

// checkTCP sends 256 KiB from the kernel (socat) to a listener on the stack.
func checkTCP(t *testing.T, st *stack.Stack, ns *netnstest.Namespace, laddr netip.AddrPort, socatAddr string) {
	t.Helper()
	l, err := st.ListenTCP(laddr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := bytes.Repeat([]byte("0123456789abcdef"), 16<<10)
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := ns.Command(ctx, "socat", "-u", "STDIN", socatAddr)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("socat to %s: %v: %s", socatAddr, err, out)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Errorf("TCP to %v: received %d bytes, want the %d sent", laddr, len(b), len(data))
		}
	case <-time.After(hangGuard):
		t.Fatalf("TCP to %v: nothing received", laddr)
	}
}
