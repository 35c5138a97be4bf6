//go:build linux

package stack_test

// The Linux kernel as the stack's peer, over both real links: a TAP whose
// kernel end is in a fresh network namespace, and a veth pair whose outside
// end carries the stack on an AF_PACKET socket and whose inside end is the
// kernel's, in a fresh namespace. Needs root; skips otherwise, fails under
// CI=true.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/echo"
	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/stack"
)

// kernelPeer is a stack wired to the kernel in a namespace of its own.
type kernelPeer struct {
	ns  *netnstest.Namespace
	st  *stack.Stack
	mac tcpip.LinkAddress
}

var peerKinds = []struct {
	name string
	new  func(t testing.TB) *kernelPeer
}{
	{"tap", newTAPPeer},
	{"raw", newRawPeer},
}

// forEachPeer runs f as a subtest per link kind, each with a fresh peer.
func forEachPeer(t *testing.T, f func(t *testing.T, p *kernelPeer)) {
	for _, kind := range peerKinds {
		t.Run(kind.name, func(t *testing.T) { f(t, kind.new(t)) })
	}
}

func newTAPPeer(t testing.TB) *kernelPeer {
	t.Helper()
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	ns := netnstest.NewNamespace(t)
	name := netnstest.UniqueName("mst")
	ep, err := tap.New(tap.Options{Name: name, OnReadError: reportReadError(t)})
	if err != nil {
		t.Fatalf("tap.New: %v", err)
	}
	t.Cleanup(ep.Close)
	ns.AdoptLink(name)
	return &kernelPeer{ns: ns, st: newStackOn(t, ep), mac: ep.LinkAddress()}
}

func newRawPeer(t testing.TB) *kernelPeer {
	t.Helper()
	netnstest.Require(t)
	ns := netnstest.NewNamespace(t)
	veth := ns.AddVeth()
	ep, err := raw.New(raw.Options{Interface: veth.Outside, OnReadError: reportReadError(t)})
	if err != nil {
		t.Fatalf("raw.New: %v", err)
	}
	t.Cleanup(ep.Close)
	return &kernelPeer{ns: ns, st: newStackOn(t, ep), mac: ep.LinkAddress()}
}

func reportReadError(t testing.TB) func(error) {
	return func(err error) { t.Errorf("link read failed during the test: %v", err) }
}

func newStackOn(t testing.TB, ep tcpipstack.LinkEndpoint) *stack.Stack {
	t.Helper()
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{
		Name:  "kernel",
		Link:  ep,
		Addrs: []string{netnstest.StackV4.String(), netnstest.StackV6.String()},
	}}})
	if err != nil {
		t.Fatalf("stack.New: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

// stackAddrs are the stack's addresses, v4 then v6.
var stackAddrs = []netip.Addr{netnstest.StackV4.Addr(), netnstest.StackV6.Addr()}

func family(a netip.Addr) string {
	if a.Is4() {
		return "v4"
	}
	return "v6"
}

// The first exchanges wait for the stack's addresses to be usable:
// netstack runs duplicate address detection on its IPv6 address for about a
// second after it comes up, longer on a loaded machine.

func TestKernelPingsStack(t *testing.T) {
	forEachPeer(t, func(t *testing.T, p *kernelPeer) {
		for _, addr := range stackAddrs {
			netnstest.WaitFor(t, netnstest.StateTimeout, "the kernel pinging the stack at "+addr.String()+" without loss", func() error {
				out, err := p.ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", addr.String())
				if err != nil || !strings.Contains(out, " 0% packet loss") {
					return fmt.Errorf("ping %s: %v: %s", addr, err, out)
				}
				return nil
			})
			mac, err := p.ns.NeighborMAC(addr)
			if err != nil {
				t.Fatalf("kernel neighbour table after ping %s: %v", addr, err)
			}
			if got, want := tcpip.LinkAddress(mac), p.mac; got != want {
				t.Errorf("kernel's neighbour entry for %s = %s, want the stack's MAC %s", addr, got, want)
			}
		}
	})
}

// startEcho runs TCP and UDP echo services on port 7 of every stack address
// until the test ends.
func startEcho(t *testing.T, st *stack.Stack) {
	t.Helper()
	var addrs []netip.AddrPort
	for _, addr := range stackAddrs {
		addrs = append(addrs, netip.AddrPortFrom(addr, 7))
	}
	svc, err := echo.Start(st, addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
}

func TestKernelTCPEcho(t *testing.T) {
	forEachPeer(t, func(t *testing.T, p *kernelPeer) {
		startEcho(t, p.st)
		for _, addr := range stackAddrs {
			msg := "hello over TCP " + family(addr) + "\n"
			netnstest.WaitFor(t, netnstest.StateTimeout, "a TCP echo from the stack at "+addr.String(), func() error {
				out, err := p.ns.ExecInput([]byte(msg), "nc", "-N", "-w", "5", addr.String(), "7")
				if err != nil || out != msg {
					return fmt.Errorf("nc %s 7: got %q, want %q (err %v)", addr, out, msg, err)
				}
				return nil
			})
		}
	})
}

func TestKernelUDPEcho(t *testing.T) {
	netnstest.RequireTools(t, "socat")
	forEachPeer(t, func(t *testing.T, p *kernelPeer) {
		startEcho(t, p.st)
		for _, addr := range stackAddrs {
			msg := "hello over UDP " + family(addr) + "\n"
			// socat sends stdin as one datagram and prints what comes back
			// within -t seconds of stdin's end.
			target := "UDP4:" + addr.String() + ":7"
			if addr.Is6() {
				target = "UDP6:[" + addr.String() + "]:7"
			}
			netnstest.WaitFor(t, netnstest.StateTimeout, "a UDP echo from the stack at "+addr.String(), func() error {
				out, err := p.ns.ExecInput([]byte(msg), "socat", "-t", "1", "-", target)
				if err != nil || out != msg {
					return fmt.Errorf("socat %s: got %q, want %q (err %v)", target, out, msg, err)
				}
				return nil
			})
		}
	})
}

// throughputBytes is what the throughput test moves each way: enough for a
// meaningful figure, small enough for CI under -race.
const throughputBytes = 16 << 20

func TestKernelTCPThroughput(t *testing.T) {
	forEachPeer(t, func(t *testing.T, p *kernelPeer) {
		waitReachable(t, p)
		for _, dir := range transferDirections {
			d, err := dir.run(p, throughputBytes)
			if err != nil {
				t.Fatalf("%s: %v", dir.name, err)
			}
			t.Logf("%s: %d bytes in %v: %.1f MB/s (nc, TCP over IPv4)", dir.name, throughputBytes, d.Round(time.Millisecond), float64(throughputBytes)/d.Seconds()/1e6)
		}
	})
}

// BenchmarkKernelTCP reports TCP throughput with the kernel as the peer, each
// way, over each link: go test -run XXX -bench KernelTCP ./stack/
func BenchmarkKernelTCP(b *testing.B) {
	const size = 64 << 20
	for _, kind := range peerKinds {
		b.Run(kind.name, func(b *testing.B) {
			p := kind.new(b)
			waitReachable(b, p)
			for _, dir := range transferDirections {
				b.Run(dir.name, func(b *testing.B) {
					b.ReportAllocs()
					var total time.Duration
					for i := 0; i < b.N; i++ {
						d, err := dir.run(p, size)
						if err != nil {
							b.Fatal(err)
						}
						total += d
					}
					b.ReportMetric(float64(size)*float64(b.N)/total.Seconds()/1e6, "MB/s")
				})
			}
		})
	}
}

// waitReachable waits until the kernel reaches the stack's IPv4 address.
func waitReachable(t testing.TB, p *kernelPeer) {
	t.Helper()
	p.ns.WaitPing(netnstest.StackV4.Addr())
}

// transferTimeout bounds one transfer: a hang guard, not a measurement.
const transferTimeout = 5 * time.Minute

// acceptWithin is l.Accept that gives up after timeout, closing l.
func acceptWithin(l net.Listener, timeout time.Duration) (net.Conn, error) {
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	select {
	case a := <-ch:
		return a.c, a.err
	case <-time.After(timeout):
		l.Close()
		return nil, fmt.Errorf("no connection within %v", timeout)
	}
}

var transferDirections = []struct {
	name string
	run  func(p *kernelPeer, size int) (time.Duration, error)
}{
	{"kernel-to-stack", kernelToStack},
	{"stack-to-kernel", stackToKernel},
}

// nextPort hands each transfer a port of its own, so a TIME_WAIT from the
// last one never gets in the way.
var (
	portMu   sync.Mutex
	nextPort = 5000
)

func port() int {
	portMu.Lock()
	defer portMu.Unlock()
	nextPort++
	return nextPort
}

// kernelToStack has nc in the namespace send size zero bytes to a stack
// listener, and times the stack's side from accept to end of stream.
func kernelToStack(p *kernelPeer, size int) (time.Duration, error) {
	ap := netip.AddrPortFrom(netnstest.StackV4.Addr(), uint16(port()))
	l, err := p.st.ListenTCP(ap)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	sender := p.ns.Start("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | nc -N -w 10 %s %d", size, ap.Addr(), ap.Port()))
	c, err := acceptWithin(l, netnstest.StateTimeout)
	if err != nil {
		return 0, fmt.Errorf("waiting for nc to connect: %w (nc: %s)", err, sender.Output())
	}
	// A hang guard for a stalled stream, long enough for a benchmark's
	// 64 MB on a loaded machine.
	if err := c.SetDeadline(time.Now().Add(transferTimeout)); err != nil {
		return 0, err
	}
	start := time.Now()
	n, err := io.Copy(io.Discard, c)
	d := time.Since(start)
	c.Close() // nc -N waits for our side to close too
	if out, werr := sender.Wait(); werr != nil {
		return 0, fmt.Errorf("nc sender: %v: %s", werr, out)
	}
	if err != nil || n != int64(size) {
		return 0, fmt.Errorf("stack received %d of %d bytes: %v", n, size, err)
	}
	return d, nil
}

// stackToKernel has the stack send size bytes to nc listening in the
// namespace, and times it from connect until the kernel side has counted
// every byte.
func stackToKernel(p *kernelPeer, size int) (time.Duration, error) {
	ap := netip.AddrPortFrom(netnstest.KernelV4.Addr(), uint16(port()))
	receiver := p.ns.Start("sh", "-c", fmt.Sprintf("nc -l -w 10 %s %d | wc -c", ap.Addr(), ap.Port()))
	var c net.Conn
	err := netns.WaitFor(netnstest.StateTimeout, fmt.Sprintf("nc listening on TCP port %d", ap.Port()), func() error {
		return p.ns.Listening("tcp", ap.Port())
	})
	if err == nil {
		err = netns.WaitFor(netnstest.StateTimeout, "a connection from the stack to nc -l at "+ap.String(), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			c, err = p.st.DialTCP(ctx, ap)
			return err
		})
	}
	if err != nil {
		return 0, fmt.Errorf("%w (nc: %s)", err, receiver.Output())
	}
	if err := c.SetDeadline(time.Now().Add(transferTimeout)); err != nil {
		return 0, err
	}
	start := time.Now()
	chunk := bytes.Repeat([]byte{0}, 64<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
			c.Close()
			return 0, fmt.Errorf("after %d bytes: %w", sent, err)
		}
	}
	c.Close()
	out, err := receiver.Wait()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("nc receiver: %v: %s", err, out)
	}
	if got, err := strconv.Atoi(strings.TrimSpace(out)); err != nil || got != size {
		return 0, errors.New("kernel received " + strings.TrimSpace(out) + " bytes, want " + strconv.Itoa(size))
	}
	return d, nil
}
