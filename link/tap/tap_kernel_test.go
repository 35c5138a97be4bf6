//go:build linux

package tap_test

import (
	"errors"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/stack"
)

// hangGuard bounds waits for events that must happen; it only turns a hang
// into a failure, it does not measure anything.
const hangGuard = netnstest.StateTimeout

func requireTAP(t *testing.T) {
	t.Helper()
	netnstest.Require(t)
	netnstest.RequireTUN(t)
}

// newTAP creates a uniquely named TAP and makes sure it is deleted by name
// when the test ends.
func newTAP(t *testing.T, opts tap.Options) *tap.Endpoint {
	t.Helper()
	if opts.Name == "" {
		opts.Name = netnstest.UniqueName("mst")
	}
	ep, err := tap.New(opts)
	if err != nil {
		t.Fatalf("tap.New(%q): %v", opts.Name, err)
	}
	t.Cleanup(func() { deleteIfPresent(t, opts.Name) })
	return ep
}

func deleteIfPresent(t *testing.T, name string) {
	if _, err := unix.IoctlGetEthtoolDrvinfo(controlSocket(t), name); err == nil {
		netnstest.DeleteLink(t, name)
	}
}

func controlSocket(t *testing.T) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// attach puts ep under a stack with no addresses, which starts its reader.
func attach(t *testing.T, ep *tap.Endpoint) *stack.Stack {
	t.Helper()
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Name: ep.Name(), Link: ep}}})
	if err != nil {
		t.Fatalf("stack.New: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func TestNewSetsDeviceUpWithMTU(t *testing.T) {
	requireTAP(t)
	ep := newTAP(t, tap.Options{MTU: 1400})
	defer ep.Close()
	out := netnstest.MustRun(t, "ip", "-o", "link", "show", "dev", ep.Name())
	for _, want := range []string{"mtu 1400", ",UP"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip link show %s = %q, want it to contain %q", ep.Name(), out, want)
		}
	}
	if got := ep.MTU(); got != 1400 {
		t.Errorf("MTU() = %d, want 1400", got)
	}
	mac := ep.LinkAddress()
	if len(mac) != 6 || mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
		t.Errorf("default MAC %s is not locally administered unicast", mac)
	}
}

func TestCloseUnblocksReader(t *testing.T) {
	requireTAP(t)
	var readErrors atomic.Int32
	ep := newTAP(t, tap.Options{OnReadError: func(error) { readErrors.Add(1) }})
	st := attach(t, ep)
	// Nothing is sent to the TAP, so the reader is parked in a read.
	// st.Close closes the endpoint and waits for its reader.
	netnstest.WaitReturn(t, "stack.Close with a reader blocked on the TAP", st.Close)
	if n := readErrors.Load(); n != 0 {
		t.Errorf("OnReadError called %d times on Close, want 0", n)
	}
	if _, err := ep.WriteFrames([][]byte{make([]byte, 60)}); err == nil {
		t.Error("WriteFrames after Close succeeded, want an error")
	}
}

func TestDeletedUnderReaderReportsOnce(t *testing.T) {
	requireTAP(t)
	var calls atomic.Int32
	errs := make(chan error, 4)
	ep := newTAP(t, tap.Options{OnReadError: func(err error) {
		calls.Add(1)
		errs <- err
	}})
	attach(t, ep)
	netnstest.DeleteLink(t, ep.Name())

	var err error
	select {
	case err = <-errs:
	case <-time.After(hangGuard):
		t.Fatalf("no OnReadError %v after deleting %s", hangGuard, ep.Name())
	}
	if !errors.Is(err, tap.ErrDeviceGone) {
		t.Errorf("OnReadError(%q), want an error wrapping tap.ErrDeviceGone", err)
	}
	// The reader must have stopped, not spun on the dead descriptor.
	netnstest.WaitReturn(t, "reader after the TAP was deleted", ep.Wait)
	if n := calls.Load(); n != 1 {
		t.Errorf("OnReadError called %d times, want 1", n)
	}
}

// TestNameTakenByOtherDevice: a name taken by an interface that is not a
// TAP (a veth, the loopback) is refused before TUNSETIFF with an error that
// says what the interface is (*tap.NotTAPError), not that it should be
// deleted.
func TestNameTakenByOtherDevice(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.NewNamespace(t)
	veth := ns.AddVeth()
	for _, tc := range []struct {
		name, want string
		ethernet   bool
	}{
		{veth.Outside, "tap: " + veth.Outside + " is a veth interface, not a TAP device", true},
		{"lo", "tap: lo is the loopback interface, not a TAP device", false},
	} {
		ep, err := tap.New(tap.Options{Name: tc.name})
		if err == nil {
			ep.Close()
			t.Fatalf("tap.New on %s succeeded, want an error", tc.name)
		}
		var nt *tap.NotTAPError
		if err.Error() != tc.want || !errors.As(err, &nt) || nt.Ethernet != tc.ethernet {
			t.Errorf("tap.New(%q) = %q, want %q, a *tap.NotTAPError with Ethernet %v", tc.name, err, tc.want, tc.ethernet)
		}
	}
}

// TestAttachToOtherUsersTAP: attaching to a TAP made for another user
// (ip tuntap add ... user 65534) without CAP_NET_ADMIN says whose it is
// and what to do, not that creating a TAP needs CAP_NET_ADMIN.
func TestAttachToOtherUsersTAP(t *testing.T) {
	requireTAP(t)
	name := netnstest.UniqueName("mst")
	netnstest.MustRun(t, "ip", "tuntap", "add", "dev", name, "mode", "tap", "user", "65534")
	t.Cleanup(func() { deleteIfPresent(t, name) })
	for _, vnet := range []bool{false, true} {
		var opts tap.Options
		opts.Name = name
		opts.UDPSegmentation = vnet // opens the TAP itself, with IFF_VNET_HDR
		var ep *tap.Endpoint
		var err error
		netnstest.WithoutCapabilities(t, func() {
			ep, err = tap.New(opts)
		}, unix.CAP_NET_ADMIN)
		if err == nil {
			ep.Close()
			t.Fatalf("vnet %v: attaching to uid 65534's TAP as uid 0 without CAP_NET_ADMIN succeeded", vnet)
		}
		want := "tap: TAP " + name + " exists and belongs to uid 65534, and uid 0 without CAP_NET_ADMIN may not attach to it: " +
			"run as uid 65534, or have it re-created for uid 0 (ip tuntap del dev " + name + " mode tap; ip tuntap add dev " + name + " mode tap user 0)"
		if !strings.HasPrefix(err.Error(), want) || !errors.Is(err, unix.EPERM) {
			t.Errorf("vnet %v: tap.New = %q, want it to start %q and wrap EPERM", vnet, err, want)
		}
	}
}

func TestNeedsCapNetAdmin(t *testing.T) {
	requireTAP(t)
	name := netnstest.UniqueName("mst")
	t.Cleanup(func() { deleteIfPresent(t, name) })
	var ep *tap.Endpoint
	var err error
	netnstest.WithoutCapabilities(t, func() {
		ep, err = tap.New(tap.Options{Name: name})
	}, unix.CAP_NET_ADMIN)
	if err == nil {
		ep.Close()
		t.Fatal("tap.New without CAP_NET_ADMIN succeeded")
	}
	want := "needs CAP_NET_ADMIN (run as root or setcap cap_net_admin,cap_net_raw+ep)"
	if !strings.Contains(err.Error(), want) || !errors.Is(err, unix.EPERM) {
		t.Errorf("tap.New = %q, want it to contain %q and wrap EPERM", err, want)
	}
}

func TestAttachKeepsPersistentTAP(t *testing.T) {
	requireTAP(t)
	name := netnstest.UniqueName("mst")
	netnstest.MustRun(t, "ip", "tuntap", "add", "dev", name, "mode", "tap")
	t.Cleanup(func() { deleteIfPresent(t, name) })

	ep, err := tap.New(tap.Options{Name: name})
	if err != nil {
		t.Fatalf("attaching to persistent TAP %s: %v", name, err)
	}
	ep.Close()
	if _, err := unix.IoctlGetEthtoolDrvinfo(controlSocket(t), name); err != nil {
		t.Errorf("persistent TAP %s is gone after Close: %v", name, err)
	}
}

func TestChildProcessDoesNotKeepTAP(t *testing.T) {
	requireTAP(t)
	ep := newTAP(t, tap.Options{})
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
	})
	ep.Close()
	if _, err := unix.IoctlGetEthtoolDrvinfo(controlSocket(t), ep.Name()); !errors.Is(err, unix.ENODEV) {
		t.Errorf("TAP %s after Close, with a child process running: %v, want it gone (ENODEV)", ep.Name(), err)
	}
}
