//go:build linux

package udpfast_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
)

// hangGuard turns a wait for something that must happen into a failure
// instead of a hang; it measures nothing.
const hangGuard = 2 * time.Minute

// kernelPeer is the stack under test on a TAP whose other end, in a fresh
// network namespace, is the Linux kernel with 198.51.100.1 and 2001:db8::1.
type kernelPeer struct {
	t     *testing.T
	ns    *netnstest.Namespace
	ifc   string // the TAP's name (kernel side, inside ns)
	st    *stack.Stack
	table *policyarp.Table
	snd4  *udpfast.Sender
	snd6  *udpfast.Sender
	seq   uint64
}

func newKernelPeer(t *testing.T) *kernelPeer { return newKernelPeerOn(t, "tap", false) }

// newKernelPeerOn is newKernelPeer on a TAP or, with kind "raw", an
// AF_PACKET socket on a veth pair, with or without UDP segmentation.
func newKernelPeerOn(t *testing.T, kind string, segment bool) *kernelPeer {
	t.Helper()
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "tshark", "arping", "socat")
	ns := netnstest.NewNamespace(t)
	var ep interface {
		tcpipstack.LinkEndpoint
		udpfast.Link
		SetFrameHook(link.FrameHook)
	}
	var ifc string
	switch kind {
	case "tap":
		ifc = netnstest.UniqueName("mst")
		tp, err := tap.New(tap.Options{Name: ifc, MAC: macA, UDPSegmentation: segment})
		if err != nil {
			t.Fatal(err)
		}
		ns.AdoptLink(ifc)
		ep = tp
	case "raw":
		veth := ns.AddVeth()
		r, err := raw.New(raw.Options{Interface: veth.Outside, MAC: macA, UDPSegmentation: segment})
		if err != nil {
			t.Fatal(err)
		}
		ifc, ep = veth.Inside, r
	}
	st, err := stack.New(stack.Options{
		NICs: []stack.NICOptions{{Name: ifc, Link: ep, Addrs: []string{netnstest.StackV4.String(), netnstest.StackV6.String()}}},
		Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	table, err := policyarp.New(policyarp.Options{Stack: st.Netstack(), NIC: st.NICID(0), BasePort: base, Ports: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(table.Close)
	filter, err := fastfilter.New(fastfilter.Options{Stack: st.Netstack(), NIC: st.NICID(0), PortMin: base, PortMax: base + 99})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(filter.Close)
	ep.SetFrameHook(filter.Hook)
	filter.SubscribeNeighborUpdates(table.HandleNeighborUpdate)
	filter.SubscribePacketTooBig(table.HandlePacketTooBig)
	reg, err := filter.Register(rtp, rtp+1, func(*fastfilter.Datagram) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	kp := &kernelPeer{t: t, ns: ns, ifc: ifc, st: st, table: table}
	for i, local := range []netip.Prefix{netnstest.StackV4, netnstest.StackV6} {
		port := uint16(rtp + i)
		snd, err := udpfast.New(udpfast.Options{
			Table:    table,
			Link:     ep,
			Fallback: udpfast.EndpointFallback{Endpoint: reg.NetstackEndpoint(port)},
			Local:    netip.AddrPortFrom(local.Addr(), port),
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			kp.snd4 = snd
		} else {
			kp.snd6 = snd
		}
	}
	// A listener, so the kernel takes the datagrams instead of answering
	// with port unreachable.
	ns.Start("socat", "-u", fmt.Sprintf("UDP6-RECV:%d", sink), "OPEN:/dev/null")
	waitBound(t, ns, sink)
	return kp
}

// waitBound waits until a UDP socket in ns is bound to port.
func waitBound(t *testing.T, ns *netnstest.Namespace, port uint16) {
	t.Helper()
	netnstest.WaitFor(t, netnstest.StateTimeout, fmt.Sprintf("socat's UDP socket bound to port %d", port), func() error {
		return ns.Listening("udp", port)
	})
}

func (kp *kernelPeer) dst(v6 bool) netip.AddrPort {
	if v6 {
		return netip.AddrPortFrom(netnstest.KernelV6.Addr(), sink)
	}
	return netip.AddrPortFrom(netnstest.KernelV4.Addr(), sink)
}

func (kp *kernelPeer) send(snd *udpfast.Sender, dst netip.AddrPort) {
	kp.t.Helper()
	p := frames.Seq(make([]byte, 172), kp.seq)
	kp.seq++
	if err := snd.Send(p, dst); err != nil {
		kp.t.Fatalf("Send #%d to %v: %v", kp.seq-1, dst, err)
	}
}

// capture starts tshark on the kernel's side of the TAP, writing the frames
// matching filter to a file, and stopping by itself after count of them.
type capture struct {
	file string
	p    *netnstest.Process
}

func (kp *kernelPeer) capture(filter string, count int) *capture {
	kp.t.Helper()
	c := &capture{file: filepath.Join(kp.t.TempDir(), "kernel.pcap")}
	c.p = kp.ns.Start("tshark", "-q", "-i", kp.ifc, "-f", filter, "-c", fmt.Sprint(count), "-w", c.file)
	netnstest.WaitFor(kp.t, netnstest.StateTimeout, "tshark's capture on "+kp.ifc+" to start", func() error {
		if strings.Contains(c.p.Output(), "Capture started") {
			return nil
		}
		return fmt.Errorf("tshark said %q: %w", c.p.Output(), netnstest.ErrNotYet)
	})
	return c
}

// wait waits for tshark to have seen its count of frames.
func (c *capture) wait(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := c.p.Wait(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tshark: %v: %s", err, c.p.Output())
		}
	case <-time.After(hangGuard):
		out, _ := exec.Command("tshark", "-r", c.file).CombinedOutput()
		t.Fatalf("tshark did not see its frames within %v: %s\n%s", hangGuard, c.p.Output(), out)
	}
}

// decode has tshark (in the namespace, where it runs as the kernel's
// observer) decode the capture with checksum verification on and returns
// one line per frame: destination MAC, IP version, IPv4 header checksum
// status, UDP checksum status (1 = good).
func (kp *kernelPeer) decode(c *capture) [][]string {
	kp.t.Helper()
	out, err := kp.ns.Exec("tshark", "-r", c.file, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=,", "-e", "eth.dst", "-e", "ip.version", "-e", "ipv6.version",
		"-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "udp.srcport")
	if err != nil {
		kp.t.Fatalf("tshark -r: %v: %s", err, out)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "Running as user") {
			rows = append(rows, strings.Split(line, ","))
		}
	}
	return rows
}

func (kp *kernelPeer) waitEntry(port uint16, dst netip.AddrPort, what string, ok func(*policyarp.Entry) bool) {
	kp.t.Helper()
	dstT := stack.AddrFrom(dst.Addr())
	netnstest.WaitFor(kp.t, netnstest.StateTimeout, fmt.Sprintf("the ARP table's entry for port %d to %s: %s", port, dst.Addr(), what), func() error {
		if e := kp.table.Slot(port).Peek(dstT); e != nil && ok(e) {
			return nil
		}
		return fmt.Errorf("entry %v: %w", kp.table.Slot(port).Peek(dstT), netnstest.ErrNotYet)
	})
}

func (kp *kernelPeer) kernelMAC() tcpip.LinkAddress {
	kp.t.Helper()
	out := kp.ns.MustIP("-o", "link", "show", "dev", kp.ifc)
	fields := strings.Fields(out)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "link/ether" {
			hw, err := net.ParseMAC(fields[i+1])
			if err != nil {
				kp.t.Fatal(err)
			}
			return tcpip.LinkAddress(hw)
		}
	}
	kp.t.Fatalf("no MAC in %q", out)
	return ""
}

func (kp *kernelPeer) setKernelMAC(mac tcpip.LinkAddress) {
	kp.t.Helper()
	kp.ns.MustIP("link", "set", "dev", kp.ifc, "address", mac.String())
}

// The Linux kernel as the peer: tshark decodes every frame the fast path
// sends with valid IPv4 header and UDP checksums; after the kernel moves to
// a new MAC and announces it with `arping -U`, the following datagrams
// reach it at the new MAC; after a move it does not announce, delivery
// resumes on its own once netstack's NUD gives up on the old MAC.
func TestKernelPeer(t *testing.T) {
	kp := newKernelPeer(t)
	oldMAC := kp.kernelMAC()

	// 1. Checksums, IPv4 and IPv6: the first datagram of each finds no
	// entry and starts netstack's resolution, the rest go fast. The first
	// goes through netstack, unless the kernel's answer came back before
	// the sender went on (seen on a busy machine: the TAP's reader ran the
	// answer in while the sender waited for a CPU), when it goes fast too.
	const perFamily = 50
	fast := 0
	c := kp.capture(fmt.Sprintf("udp dst port %d", sink), 2*perFamily)
	for _, v6 := range []bool{false, true} {
		snd := kp.snd4
		port := uint16(rtp)
		if v6 {
			snd, port = kp.snd6, rtp+1
		}
		resolutions := kp.table.Stats().Resolutions
		kp.send(snd, kp.dst(v6))
		kp.waitEntry(port, kp.dst(v6), "resolution", func(e *policyarp.Entry) bool { return e.State == policyarp.Valid })
		first := snd.Stats()
		if first.Fast+first.FallbackTotal() != 1 || (first.FallbackTotal() == 1 && first.Fallback(udpfast.ReasonNoEntry) != 1) {
			t.Fatalf("v6=%v: the first datagram: stats %+v; want it through netstack for want of an entry, or fast; "+
				"netstack's neighbours: %s; the kernel's: %s", v6, first, kp.neighbors(), kp.ns.MustIP("neigh", "show", "dev", kp.ifc))
		}
		for i := 1; i < perFamily; i++ {
			kp.send(snd, kp.dst(v6))
		}
		st := snd.Stats()
		if got := kp.table.Stats().Resolutions - resolutions; got != 1 {
			t.Errorf("v6=%v: the table started %d resolutions, want 1", v6, got)
		}
		if st.Fast-first.Fast != perFamily-1 || st.FallbackTotal() != first.FallbackTotal() {
			t.Fatalf("v6=%v: stats %+v after the first datagram's %+v; want the other %d fast", v6, st, first, perFamily-1)
		}
		fast += int(st.Fast)
		t.Logf("v6=%v: %d of %d fast, %d through netstack", v6, st.Fast, perFamily, st.FallbackTotal())
	}
	c.wait(t)
	rows := kp.decode(c)
	if len(rows) != 2*perFamily {
		t.Fatalf("tshark decoded %d frames, want %d", len(rows), 2*perFamily)
	}
	v4n, v6n := 0, 0
	for i, r := range rows {
		if len(r) < 6 || tcpip.LinkAddress(mustMAC(t, r[0])) != oldMAC {
			t.Fatalf("frame %d: %q", i+1, r)
		}
		switch {
		case r[1] == "4":
			v4n++
			if r[3] != "1" || r[4] != "1" {
				t.Errorf("frame %d (IPv4): IP checksum status %q, UDP checksum status %q; want 1 (good)", i+1, r[3], r[4])
			}
		case r[2] == "6":
			v6n++
			if r[4] != "1" {
				t.Errorf("frame %d (IPv6): UDP checksum status %q; want 1 (good)", i+1, r[4])
			}
		default:
			t.Errorf("frame %d: not IP: %q", i+1, r)
		}
	}
	if v4n != perFamily || v6n != perFamily {
		t.Fatalf("%d IPv4 and %d IPv6 frames, want %d each", v4n, v6n, perFamily)
	}
	t.Logf("tshark verified the IP and UDP checksums of %d IPv4 and %d IPv6 frames (%d of them fast)", v4n, v6n, fast)

	// 2. New MAC, announced: the kernel's gratuitous ARP reaches the fast
	// filter, the entry is invalidated, netstack resolves again.
	announced := frames.MAC(0x11)
	kp.setKernelMAC(announced)
	const afterGARP = 20
	c = kp.capture(fmt.Sprintf("udp dst port %d and ether dst %s", sink, announced), afterGARP)
	if out, err := kp.ns.Exec("arping", "-U", "-c", "1", "-I", kp.ifc, netnstest.KernelV4.Addr().String()); err != nil {
		t.Fatalf("arping -U: %v: %s", err, out)
	}
	kp.waitEntry(rtp, kp.dst(false), "invalidation by the gratuitous ARP", func(e *policyarp.Entry) bool { return e.State != policyarp.Valid || e.MAC == announced })
	before := kp.snd4.Stats()
	for i := 0; i < afterGARP; i++ {
		kp.send(kp.snd4, kp.dst(false))
		time.Sleep(5 * time.Millisecond) // pacing, as a media stream would
	}
	c.wait(t)
	after := kp.snd4.Stats()
	t.Logf("after arping -U: all %d datagrams reached the new MAC %s; %d fast, fallbacks %v; table %+v",
		afterGARP, announced, after.Fast-before.Fast, diffFallbacks(before, after), kp.table.Stats())

	// 3. New MAC, not announced: the stream keeps going (50 packets/s) until
	// a datagram reaches the new MAC. That takes netstack's NUD: up to a
	// minute of wall time.
	if testing.Short() {
		t.Log("-short: skipping the unannounced MAC change (up to a minute of NUD)")
		return
	}
	silent := frames.MAC(0x22)
	c = kp.capture(fmt.Sprintf("udp dst port %d and ether dst %s", sink, silent), 1)
	kp.setKernelMAC(silent)
	changed := time.Now()
	done := make(chan error, 1)
	go func() { _, err := c.p.Wait(); done <- err }()
	var timeline []string
	lastState := ""
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for resumed := false; !resumed; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			resumed = true
		case <-ticker.C:
			if time.Since(changed) > hangGuard {
				t.Fatalf("no datagram reached the new MAC within %v; timeline %v", hangGuard, timeline)
			}
			kp.send(kp.snd4, kp.dst(false))
			if s := kp.neighborState(netnstest.KernelV4.Addr()); s != lastState {
				timeline = append(timeline, fmt.Sprintf("%.1fs %s", time.Since(changed).Seconds(), s))
				lastState = s
			}
		}
	}
	t.Logf("after a silent MAC change, delivery resumed after %.1fs. netstack's neighbour entry for the kernel (sampled every 20ms): %s. "+
		"Why: the fast path keeps using the MAC netstack holds while netstack trusts it: REACHABLE for its reachable time "+
		"(30s × [0.5, 1.5]) after the last confirmation, then STALE; the refresh loop's lookup moves it to DELAY (5s) and "+
		"PROBE (3 unicast probes 1s apart, to the old MAC, unanswered), then UNREACHABLE; the next refresh (≤1s) starts a "+
		"broadcast resolution, the kernel answers with the new MAC and the entry is valid again. Fallbacks since: %v",
		time.Since(changed).Seconds(), strings.Join(timeline, " → "), diffFallbacks(after, kp.snd4.Stats()))
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatalf("MAC %q: %v", s, err)
	}
	return hw
}

func diffFallbacks(a, b udpfast.Stats) map[string]uint64 {
	m := map[string]uint64{}
	for r := range b.Fallbacks {
		if d := b.Fallbacks[r] - a.Fallbacks[r]; d != 0 {
			m[udpfast.Reason(r).String()] = d
		}
	}
	return m
}

// neighbors lists netstack's neighbour entries, both families.
func (kp *kernelPeer) neighbors() string {
	var b strings.Builder
	now := kp.st.Netstack().Clock().NowMonotonic()
	for _, proto := range []tcpip.NetworkProtocolNumber{header.IPv4ProtocolNumber, header.IPv6ProtocolNumber} {
		nbrs, err := kp.st.Netstack().Neighbors(kp.st.NICID(0), proto)
		if err != nil {
			fmt.Fprintf(&b, "[%v: %s] ", proto, err)
			continue
		}
		for _, n := range nbrs {
			fmt.Fprintf(&b, "[%s %s %s updated %v ago] ", n.Addr, n.State, n.LinkAddr, now.Sub(n.UpdatedAt))
		}
	}
	return b.String()
}

// neighborState describes netstack's neighbour entry for addr.
func (kp *kernelPeer) neighborState(addr netip.Addr) string {
	nbrs, err := kp.st.Netstack().Neighbors(kp.st.NICID(0), header.IPv4ProtocolNumber)
	if err != nil {
		return err.String()
	}
	for _, n := range nbrs {
		if n.Addr == stack.AddrFrom(addr) {
			if n.State == tcpipstack.Unknown {
				return "unknown"
			}
			return fmt.Sprintf("%s(%s)", n.State, n.LinkAddr)
		}
	}
	return "absent"
}

// udpInDatagrams reads the namespace's Udp (or Udp6) InDatagrams counter.
func udpInDatagrams(t *testing.T, ns *netnstest.Namespace, v6 bool) uint64 {
	t.Helper()
	file, field := "/proc/net/snmp", "InDatagrams"
	if v6 {
		file, field = "/proc/net/snmp6", "Udp6InDatagrams"
	}
	out, err := ns.Exec("cat", file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		switch {
		case v6 && len(f) == 2 && f[0] == field:
			var n uint64
			fmt.Sscan(f[1], &n)
			return n
		case !v6 && len(f) > 1 && f[0] == "Udp:" && i+1 < len(lines):
			vals := strings.Fields(lines[i+1])
			for j, name := range f {
				if name == field && j < len(vals) {
					var n uint64
					fmt.Sscan(vals[j], &n)
					return n
				}
			}
		}
	}
	t.Fatalf("no %s in %s:\n%s", field, file, out)
	return 0
}

// TestKernelCutsTrains: over a TAP or an AF_PACKET socket on a veth, with
// UDPSegmentation, a batch to the kernel goes as UDP trains, and a socket
// there receives every datagram, one by one (the kernel's UDP counter moves
// by the number of datagrams), with its own content, in order.
func TestKernelCutsTrains(t *testing.T) {
	for _, kind := range []string{"tap", "raw"} {
		t.Run(kind, func(t *testing.T) { testKernelCutsTrains(t, kind) })
	}
}

func testKernelCutsTrains(t *testing.T, kind string) {
	kp := newKernelPeerOn(t, kind, true)
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			// A port of its own per family: a dual-stack IPv6 socket
			// cannot share one with the IPv4 socket still open.
			snd, dst := kp.snd4, netip.AddrPortFrom(kp.dst(false).Addr(), sink+2)
			proto := "UDP4-RECV"
			if v6 {
				snd, dst, proto = kp.snd6, netip.AddrPortFrom(kp.dst(true).Addr(), sink+3), "UDP6-RECV"
			}
			out := filepath.Join(t.TempDir(), "received")
			kp.ns.Start("socat", "-u", fmt.Sprintf("%s:%d", proto, dst.Port()), "CREATE:"+out)
			waitBound(t, kp.ns, dst.Port())
			// The first datagram resolves the next hop through netstack.
			netnstest.WaitFor(t, netnstest.StateTimeout, "the next hop to "+dst.Addr().String()+" resolved (a hello sent on the fast path)", func() error {
				if err := snd.Send([]byte("hello"), dst); err != nil {
					return err
				}
				if snd.Stats().Fast == 0 {
					return fmt.Errorf("sender %+v: %w", snd.Stats(), netnstest.ErrNotYet)
				}
				return nil
			})
			netnstest.WaitFor(t, netnstest.StateTimeout, "socat receiving a hello", func() error {
				if data, _ := os.ReadFile(out); len(data) < len("hello") {
					return fmt.Errorf("received %q, sender %+v: %w", data, snd.Stats(), netnstest.ErrNotYet)
				}
				return nil
			})
			before := udpInDatagrams(t, kp.ns, v6)
			trainsBefore := snd.Stats().Trains
			const n = 100 // two trains: 64 and 36
			var payloads [][]byte
			var want []byte
			for i := range n {
				p := frames.Seq(make([]byte, 172), uint64(i))
				payloads = append(payloads, p)
				want = append(want, p...)
			}
			if k, err := snd.SendBatch(payloads, []netip.AddrPort{dst}); k != n || err != nil {
				t.Fatalf("SendBatch = %d, %v", k, err)
			}
			if got := snd.Stats().Trains - trainsBefore; got != 2 {
				t.Errorf("%d trains written, want 2", got)
			}
			netnstest.WaitFor(t, netnstest.StateTimeout, fmt.Sprintf("the kernel's UDP counter to count %d datagrams", n), func() error {
				if got := udpInDatagrams(t, kp.ns, v6) - before; got < n {
					return fmt.Errorf("the kernel received %d of %d datagrams: %w", got, n, netnstest.ErrNotYet)
				}
				return nil
			})
			if got := udpInDatagrams(t, kp.ns, v6) - before; got != n {
				t.Errorf("the kernel counted %d datagrams, want %d (one per datagram of the trains)", got, n)
			}
			netnstest.WaitFor(t, netnstest.StateTimeout, fmt.Sprintf("socat writing the %d bytes of the trains", len(want)), func() error {
				data, err := os.ReadFile(out)
				if err != nil || len(data) < len(want) {
					return fmt.Errorf("%d bytes (%v): %w", len(data), err, netnstest.ErrNotYet)
				}
				// After the hellos that found the next hop.
				if !bytes.Equal(data[len(data)-len(want):], want) || len(bytes.ReplaceAll(data[:len(data)-len(want)], []byte("hello"), nil)) != 0 {
					return fmt.Errorf("the socket received other bytes than were sent (%d bytes)", len(data))
				}
				return nil
			})
		})
	}
}
