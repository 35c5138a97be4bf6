//go:build linux

package tap_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

// vnetOffload returns a new offload engine in vnet mode (one per link).
func vnetOffload(t *testing.T) *tcpoffload.Engine {
	t.Helper()
	eng, err := tcpoffload.New(tcpoffload.Options{Mode: tcpoffload.Vnet})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestVnetCompletesInboundChecksums: a TAP in vnet mode lets the kernel hand
// over frames with checksums left partial (TUN_F_CSUM); the reader
// completes them, so netstack accepts them: TCP and UDP echo work over IPv4
// and IPv6, and the device counts the frames it completed.
func TestVnetCompletesInboundChecksums(t *testing.T) {
	requireTAP(t)
	netnstest.RequireTools(t, "nc", "socat", "ping")
	ns := netnstest.NewNamespace(t)
	ep := newTAP(t, tap.Options{TCPOffload: vnetOffload(t)})
	ns.AdoptLink(ep.Name())
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Name: ep.Name(), Link: ep,
		Addrs: []string{netnstest.StackV4.String(), netnstest.StackV6.String()}}}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { st.Close(); wg.Wait() })
	for _, a := range []netip.Addr{netnstest.StackV4.Addr(), netnstest.StackV6.Addr()} {
		ap := netip.AddrPortFrom(a, 7)
		l, err := st.ListenTCP(ap)
		if err != nil {
			t.Fatal(err)
		}
		u, err := st.ListenUDP(ap)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.SetDeadline(time.Now().Add(hangGuard))
				_, _ = io.Copy(c, c)
				c.Close()
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				n, from, err := u.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = u.WriteTo(buf[:n], from)
			}
		}()
	}
	ns.WaitPing(netnstest.StackV6.Addr())
	for _, a := range []string{netnstest.StackV4.Addr().String(), netnstest.StackV6.Addr().String()} {
		msg := strings.Repeat("hello over tcp to "+a+" ", 200) + "\n"
		out, err := ns.ExecInput([]byte(msg), "nc", "-N", "-w", "5", a, "7")
		if err != nil || out != msg {
			t.Errorf("TCP echo via %s: got %d bytes, %v", a, len(out), err)
		}
		udpAddr := net.JoinHostPort(a, "7")
		out, err = ns.ExecInput([]byte("hello over udp\n"), "socat", "-T", "2", "-", "UDP:"+udpAddr)
		if err != nil || out != "hello over udp\n" {
			t.Errorf("UDP echo via %s: got %q, %v", a, out, err)
		}
	}
	if n := ep.DeviceStats().RxChecksumCompleted.Load(); n == 0 {
		t.Error("no inbound frame was marked NEEDS_CSUM: the kernel computed every checksum itself")
	}
	if n := ep.DeviceStats().RxBadVnetHdr.Load(); n != 0 {
		t.Errorf("%d frames dropped for a bad virtio-net header", n)
	}
}

// TestVnetDeletedUnderReaderReportsOnce: the TAP opened without water
// reports its deletion like the default one.
func TestVnetDeletedUnderReaderReportsOnce(t *testing.T) {
	requireTAP(t)
	errs := make(chan error, 4)
	ep := newTAP(t, tap.Options{TCPOffload: vnetOffload(t), OnReadError: func(err error) { errs <- err }})
	attach(t, ep)
	netnstest.DeleteLink(t, ep.Name())
	select {
	case err := <-errs:
		if !errors.Is(err, tap.ErrDeviceGone) {
			t.Errorf("OnReadError(%q), want an error wrapping tap.ErrDeviceGone", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("no OnReadError %v after deleting %s", hangGuard, ep.Name())
	}
	netnstest.WaitReturn(t, "reader after the TAP was deleted", ep.Wait)
	if len(errs) != 0 {
		t.Errorf("OnReadError called again: %v", <-errs)
	}
}

// TestVnetAttachKeepsPersistentTAP: attaching to a persistent TAP in vnet
// mode leaves it in place on Close.
func TestVnetAttachKeepsPersistentTAP(t *testing.T) {
	requireTAP(t)
	name := netnstest.UniqueName("mst")
	netnstest.MustRun(t, "ip", "tuntap", "add", "dev", name, "mode", "tap")
	t.Cleanup(func() { deleteIfPresent(t, name) })
	ep, err := tap.New(tap.Options{Name: name, TCPOffload: vnetOffload(t)})
	if err != nil {
		t.Fatalf("attaching to persistent TAP %s in vnet mode: %v", name, err)
	}
	if ep.TCPOffload() == nil || ep.SupportedGSO() == 0 {
		t.Errorf("vnet endpoint without offload: engine %v, GSO %v", ep.TCPOffload(), ep.SupportedGSO())
	}
	ep.Close()
	netnstest.MustRun(t, "ip", "link", "show", "dev", name)
}
