//go:build linux

package raw_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/stack"
)

// hangGuard bounds waits for events that must happen; it only turns a hang
// into a failure, it does not measure anything.
const hangGuard = netnstest.StateTimeout

func newVeth(t *testing.T) (*netnstest.Namespace, netnstest.Veth) {
	t.Helper()
	ns := netnstest.NewNamespace(t)
	return ns, ns.AddVeth()
}

func newEndpoint(t *testing.T, opts raw.Options) *raw.Endpoint {
	t.Helper()
	ep, err := raw.New(opts)
	if err != nil {
		t.Fatalf("raw.New(%q): %v", opts.Interface, err)
	}
	t.Cleanup(ep.Close)
	return ep
}

// attach puts ep under a stack with the test addresses, which starts its
// reader.
func attach(t *testing.T, ep *raw.Endpoint) *stack.Stack {
	t.Helper()
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{
		Name:  ep.Interface(),
		Link:  ep,
		Addrs: []string{netnstest.StackV4.String(), netnstest.StackV6.String()},
	}}})
	if err != nil {
		t.Fatalf("stack.New: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func TestDefaultsComeFromInterface(t *testing.T) {
	netnstest.Require(t)
	_, veth := newVeth(t)
	netnstest.MustRun(t, "ip", "link", "set", "dev", veth.Outside, "mtu", "1400")
	ifi, err := net.InterfaceByName(veth.Outside)
	if err != nil {
		t.Fatal(err)
	}
	ep := newEndpoint(t, raw.Options{Interface: veth.Outside})
	if got, want := ep.LinkAddress(), tcpip.LinkAddress(ifi.HardwareAddr); got != want {
		t.Errorf("LinkAddress() = %s, want the interface's %s", got, want)
	}
	if got := ep.MTU(); got != 1400 {
		t.Errorf("MTU() = %d, want the interface's 1400", got)
	}
	if got := ep.Interface(); got != veth.Outside {
		t.Errorf("Interface() = %q, want %q", got, veth.Outside)
	}
}

func TestInterfaceDown(t *testing.T) {
	netnstest.Require(t)
	_, veth := newVeth(t)
	netnstest.MustRun(t, "ip", "link", "set", "dev", veth.Outside, "down")
	ep, err := raw.New(raw.Options{Interface: veth.Outside})
	if err == nil {
		ep.Close()
		t.Fatal("raw.New on a down interface succeeded")
	}
	if want := fmt.Sprintf("raw: interface %q is down: bring it up first", veth.Outside); !strings.Contains(err.Error(), want) {
		t.Errorf("raw.New = %q, want it to contain %q", err, want)
	}
}

func TestNeedsCapNetRaw(t *testing.T) {
	netnstest.Require(t)
	_, veth := newVeth(t)
	var ep *raw.Endpoint
	var err error
	netnstest.WithoutCapabilities(t, func() {
		ep, err = raw.New(raw.Options{Interface: veth.Outside})
	}, unix.CAP_NET_RAW)
	if err == nil {
		ep.Close()
		t.Fatal("raw.New without CAP_NET_RAW succeeded")
	}
	want := "needs CAP_NET_RAW (run as root or setcap cap_net_admin,cap_net_raw+ep)"
	if !strings.Contains(err.Error(), want) || !errors.Is(err, unix.EPERM) {
		t.Errorf("raw.New = %q, want it to contain %q and wrap EPERM", err, want)
	}
}

func TestCloseUnblocksReader(t *testing.T) {
	netnstest.Require(t)
	_, veth := newVeth(t)
	var readErrors atomic.Int32
	ep := newEndpoint(t, raw.Options{Interface: veth.Outside, OnReadError: func(error) { readErrors.Add(1) }})
	st := attach(t, ep)
	// st.Close closes the endpoint and waits for its reader.
	netnstest.WaitReturn(t, "stack.Close with a reader blocked in recvmmsg", st.Close)
	if n := readErrors.Load(); n != 0 {
		t.Errorf("OnReadError called %d times on Close, want 0", n)
	}
	if _, err := ep.WriteFrames([][]byte{make([]byte, 60)}); !errors.Is(err, link.ErrClosed) {
		t.Errorf("WriteFrames after Close = %v, want link.ErrClosed", err)
	}
}

func TestInterfaceDeletedReportsOnce(t *testing.T) {
	netnstest.Require(t)
	_, veth := newVeth(t)
	var calls atomic.Int32
	errs := make(chan error, 4)
	ep := newEndpoint(t, raw.Options{Interface: veth.Outside, OnReadError: func(err error) {
		calls.Add(1)
		errs <- err
	}})
	attach(t, ep)
	netnstest.DeleteLink(t, veth.Outside)

	var err error
	select {
	case err = <-errs:
	case <-time.After(hangGuard):
		t.Fatalf("no OnReadError %v after deleting %s", hangGuard, veth.Outside)
	}
	if want := fmt.Sprintf("raw: interface %q went down or was deleted", veth.Outside); !strings.Contains(err.Error(), want) {
		t.Errorf("OnReadError(%q), want it to contain %q", err, want)
	}
	netnstest.WaitReturn(t, "reader after the interface was deleted", ep.Wait)
	if n := calls.Load(); n != 1 {
		t.Errorf("OnReadError called %d times, want 1", n)
	}
	if _, err := ep.WriteFrames([][]byte{make([]byte, 60)}); err == nil {
		t.Error("WriteFrames on a deleted interface succeeded")
	}
}

// TestForeignMAC runs the stack with a MAC the interface does not own
// (promiscuous mode), checks the kernel can reach it and learns that MAC,
// that the socket never hands the stack its own frames back, and that the
// checksums the kernel's veth left to offload are completed.
func TestForeignMAC(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTools(t, "ping", "nc")
	ns, veth := newVeth(t)
	mac := tcpip.LinkAddress("\x02\x00\x5e\x00\x53\x02")
	ep := newEndpoint(t, raw.Options{Interface: veth.Outside, MAC: mac})
	var looped atomic.Int32
	ep.SetFrameHook(func(frame []byte) link.Verdict {
		if len(frame) >= header.EthernetMinimumSize && header.Ethernet(frame).SourceAddress() == mac {
			looped.Add(1)
		}
		return link.Pass
	})
	st := attach(t, ep)

	addr := netnstest.StackV4.Addr()
	netnstest.WaitFor(t, netnstest.StateTimeout, "the kernel pinging the stack at "+addr.String()+" without loss", func() error {
		out, err := ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", addr.String())
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			return fmt.Errorf("ping %s: %v: %s", addr, err, out)
		}
		return nil
	})
	got, err := ns.NeighborMAC(addr)
	if err != nil {
		t.Fatal(err)
	}
	if tcpip.LinkAddress(got) != mac {
		t.Errorf("kernel's neighbour entry for %s = %s, want %s", addr, got, mac)
	}

	// A TCP exchange: the kernel's segments arrive with checksums left to
	// offload, which the reader must complete for netstack to accept them.
	l, err := st.ListenTCP(netip.AddrPortFrom(addr, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(hangGuard))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		_, _ = c.Write(buf[:n])
	}()
	out, err := ns.ExecInput([]byte("ping\n"), "nc", "-N", "-w", "5", addr.String(), "7")
	if err != nil || out != "ping\n" {
		t.Fatalf("TCP echo through nc: got %q, %v", out, err)
	}
	if n := ep.DeviceStats().RxChecksumCompleted.Load(); n == 0 {
		t.Error("RxChecksumCompleted = 0 after a TCP exchange with a veth peer, want > 0")
	}
	if n := looped.Load(); n != 0 {
		t.Errorf("the stack was handed %d of its own frames back", n)
	}
}
