// Package netnstest lets tests use the Linux kernel as a real network peer:
// a testing.TB layer over internal/netns.
//
// A test calls Require (and RequireTools for the programs it runs), then
// NewNamespace for a fresh, uniquely named network namespace. It puts the
// kernel's end of a link into the namespace with AdoptLink (a TAP the test
// created) or AddVeth (a veth pair whose outside end stays in the test's own
// namespace for an AF_PACKET link), which also gives the kernel its
// addresses: KernelV4 and KernelV6. The stack under test takes StackV4 and
// StackV6. Commands run inside the namespace with Namespace.Exec and
// Namespace.Start.
//
// Everything created is deleted by name in t.Cleanup, also when the test
// fails. Tests that cannot run (not root, a tool missing) skip, except under
// CI=true, where they fail: CI must run them.
//
// Nothing here blocks without a deadline. A test waits for the state it
// needs (carrier up, DAD done, a neighbour known, a socket bound: see
// netns.Namespace's CarrierUp, AddressReady, NeighborKnown, Listening) with
// WaitFor and a generous timeout such as StateTimeout, never for a count of
// attempts, and asserts nothing about how long it took.
package netnstest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/netns"
)

// The addresses on the test link: the kernel is internal/frames' Peer, the
// stack under test its Stack. Only documentation ranges, and only inside
// namespaces the test created.
var (
	KernelV4, KernelV6 = frames.Prefix(frames.PeerV4), frames.Prefix(frames.PeerV6)
	StackV4, StackV6   = frames.Prefix(frames.StackV4), frames.Prefix(frames.StackV6)
)

// StateTimeout is how long a test waits for the kernel or the stack to
// reach a state before it fails: a hang guard, generous because a loaded
// machine is slow, not a timing assertion.
const StateTimeout = netns.StateTimeout

// ProcessTimeout bounds Process.Wait: a background command that has not
// exited by then is killed and the test fails instead of hanging.
const ProcessTimeout = 2 * time.Minute

// ErrNotYet is what a condition polled with WaitFor returns, alone or
// wrapped, while its state is not there.
var ErrNotYet = netns.ErrNotYet

// InCI reports whether the environment says it is CI (CI=true), where tests
// that need the kernel must run rather than skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// cannotRun skips the test, or fails it under CI.
func cannotRun(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: this test must run, not skip)", msg)
	}
	t.Skip(msg)
}

// Debian packages that provide the tools tests use.
var debianPackage = map[string]string{
	"ip":      "iproute2",
	"ss":      "iproute2",
	"ping":    "iputils-ping",
	"arping":  "iputils-arping",
	"nc":      "netcat-openbsd",
	"socat":   "socat",
	"tshark":  "tshark",
	"iperf3":  "iperf3",
	"ethtool": "ethtool",
	"curl":    "curl",
	"ffmpeg":  "ffmpeg",
	"nft":     "nftables",
	"nstat":   "iproute2",
	"tc":      "iproute2",
	"setcap":  "libcap2-bin",

	"aria2c":           "aria2",
	"transmission-cli": "transmission-cli",

	"kamailio":            "kamailio",
	"rtpengine":           "rtpengine-daemon",
	"rtpengine-ng-client": "rtpengine-utils libjson-perl",
}

// RequireTools skips (fails under CI) unless every tool is on PATH, naming
// the Debian package to install.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := debianPackage[tool]
			if pkg == "" {
				pkg = "the package that provides it"
			}
			cannotRun(t, "%s not found on PATH: apt-get install %s", tool, pkg)
		}
	}
}

// Require skips (fails under CI) unless the test may create namespaces and
// links: Linux, CAP_NET_ADMIN and CAP_NET_RAW, and iproute2's ip and ss.
func Require(t testing.TB) {
	t.Helper()
	if err := netns.CheckPrivileges(); err != nil {
		cannotRun(t, "needs the Linux kernel as a peer: %v", err)
	}
	RequireTools(t, "ip", "ss")
}

// RequireTUN skips (fails under CI) unless /dev/net/tun exists.
func RequireTUN(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		cannotRun(t, "/dev/net/tun is missing (modprobe tun): %v", err)
	}
}

// UniqueName returns prefix followed by 8 random hex digits; with a short
// prefix ("ms", "mst") it fits an interface name (15 bytes at most).
func UniqueName(prefix string) string { return netns.UniqueName(prefix) }

// cleanupAtEnd returns a Cleanup that runs when the test ends, failing the
// test if deleting something fails. Registered before anything is made, so
// a half-made set-up is deleted too.
func cleanupAtEnd(t testing.TB) *netns.Cleanup {
	c := new(netns.Cleanup)
	t.Cleanup(func() {
		if err := c.Run(); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	return c
}

// WaitFor checks cond until it returns nil and fails the test, naming what
// it waited for and cond's last error, if that takes longer than timeout.
// See netns.WaitFor.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := netns.WaitFor(timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}

// WaitReturn runs f (a Close, a Wait) on a goroutine of its own and fails
// the test, naming what, if f has not returned within StateTimeout.
func WaitReturn(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(StateTimeout):
		t.Fatalf("%s: still blocked after %v", what, StateTimeout)
	}
}

// WaitCarrier waits until the interface dev carries frames (see
// netns.Namespace.CarrierUp), in ns or, if ns is nil, in the test's own
// namespace; it fails the test after StateTimeout.
func WaitCarrier(t testing.TB, ns *Namespace, dev string) {
	t.Helper()
	var where netns.Namespace
	if ns != nil {
		where = ns.Namespace
	}
	WaitFor(t, StateTimeout, "carrier on "+dev, func() error { return where.CarrierUp(dev) })
}

// WaitPing waits until addr answers a ping from the kernel in ns (see
// netns.Namespace.Ping); it fails the test after StateTimeout.
func (ns *Namespace) WaitPing(addr netip.Addr) {
	ns.t.Helper()
	WaitFor(ns.t, StateTimeout, "the kernel in "+ns.Name+" pinging "+addr.String(), func() error { return ns.Ping(addr) })
}

// Namespace is a network namespace made for one test. The methods of
// netns.Namespace that return errors (IP, Exec, ExecInput, Command,
// NeighborMAC, and the states CarrierUp, AddressReady, NeighborKnown,
// Listening) work on it as they are.
type Namespace struct {
	netns.Namespace
	t testing.TB
}

// NewNamespace creates a uniquely named namespace with its loopback up and
// deletes it when the test ends.
func NewNamespace(t testing.TB) *Namespace {
	t.Helper()
	Require(t)
	ns, err := netns.Add(cleanupAtEnd(t), UniqueName("ms-"))
	if err != nil {
		t.Fatal(err)
	}
	return &Namespace{Namespace: ns, t: t}
}

// MustRun runs a command in the test's own namespace and fails the test if
// it fails.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := netns.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MustIP is IP that fails the test on error.
func (ns *Namespace) MustIP(args ...string) string {
	ns.t.Helper()
	return MustRun(ns.t, "ip", append([]string{"-n", ns.Name}, args...)...)
}

// Process is a command running in the background inside a namespace.
type Process struct {
	*netns.Process
}

// Start runs args in the background inside the namespace. The process is
// killed (and waited for) when the test ends, if it has not exited.
func (ns *Namespace) Start(args ...string) *Process {
	ns.t.Helper()
	p, err := ns.Namespace.Start(args...)
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(p.Kill)
	return &Process{p}
}

// Wait waits for the process to exit, up to ProcessTimeout, and returns its
// combined output. A process still running then is killed, and Wait
// returns an error saying so.
func (p *Process) Wait() (string, error) { return p.Process.Wait(ProcessTimeout) }

// DeleteLink deletes the interface name in the test's own namespace now.
func DeleteLink(t testing.TB, name string) {
	t.Helper()
	MustRun(t, "ip", "link", "del", "dev", name)
}

// AdoptLink moves the interface name (made by the test in its own namespace,
// e.g. a TAP) into ns and gives it the kernel's addresses. The IPv6 address
// skips duplicate address detection so it is usable at once. The interface
// is deleted, wherever it is, when the test ends.
func (ns *Namespace) AdoptLink(name string) {
	ns.t.Helper()
	if err := ns.Namespace.AdoptLink(cleanupAtEnd(ns.t), name, nil, KernelV4, KernelV6); err != nil {
		ns.t.Fatal(err)
	}
}

// Veth is a veth pair made by AddVeth or NewVethPair.
type Veth = netns.Veth

// AddVeth creates a veth pair for an AF_PACKET link with the kernel in ns
// as its peer: the outside end stays in the test's own namespace, up, with
// no addresses and the kernel's own IP processing kept off it; the inside
// end, in ns, has KernelV4 and KernelV6 and TCP segmentation offload off
// (see netns.PeerVethOptions.DisableTSO). Both are deleted when the test
// ends.
func (ns *Namespace) AddVeth() Veth {
	ns.t.Helper()
	v, err := ns.AddPeerVeth(cleanupAtEnd(ns.t), netns.PeerVethOptions{
		Prefix:     "ms",
		Inside:     []netip.Prefix{KernelV4, KernelV6},
		DisableTSO: true,
	})
	if err != nil {
		ns.t.Fatal(err)
	}
	return v
}

// NewVethPair creates a veth pair with both ends in the test's own
// namespace, up, with IPv6 off so the kernel sends nothing on its own: a
// wire between two AF_PACKET sockets. Both ends are deleted by name when the
// test ends.
func NewVethPair(t testing.TB) Veth {
	t.Helper()
	Require(t)
	v, err := netns.AddWire(cleanupAtEnd(t), "ms")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// WithoutCapabilities runs f on an OS thread of its own whose effective
// capability set lacks caps (e.g. unix.CAP_NET_ADMIN), to see what a process
// without them gets; see netns.WithoutCapabilities. f must not call t.Fatal
// or t.FailNow (it runs on another goroutine): return results through its
// closure.
func WithoutCapabilities(t testing.TB, f func(), caps ...int) {
	t.Helper()
	if err := netns.WithoutCapabilities(f, caps...); err != nil {
		t.Fatal(err)
	}
}

// AddVLAN adds a VLAN sub-interface name on dev in ns (ip link add link
// DEV name NAME type vlan id ID) with addrs, up. It skips, under CI too,
// when the kernel has no 802.1Q support (CONFIG_VLAN_8021Q not set and no
// 8021q module): that is the kernel's build, which no package installs, not
// a missing tool or capability.
func (ns *Namespace) AddVLAN(dev, name string, id uint16, addrs ...netip.Prefix) {
	ns.t.Helper()
	out, err := ns.IP("link", "add", "link", dev, "name", name, "type", "vlan", "id", strconv.Itoa(int(id)))
	if err != nil {
		if strings.Contains(out+err.Error(), "Unknown device type") {
			ns.t.Skipf("the kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q; modprobe 8021q), so it cannot be the VLAN peer: %v", err)
		}
		ns.t.Fatal(err)
	}
	if err := ns.Address(name, nil, addrs...); err != nil {
		ns.t.Fatal(err)
	}
}
