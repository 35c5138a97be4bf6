// Package netnstest lets tests use the Linux kernel as a real network peer.
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
// Real-kernel tests wait for conditions with Retry and Eventually: a bounded
// number of polls, never a timed assertion.
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
)

// The addresses on the test link: the kernel is internal/frames' Peer, the
// stack under test its Stack. Only documentation ranges, and only inside
// namespaces the test created.
var (
	KernelV4, KernelV6 = frames.Prefix(frames.PeerV4), frames.Prefix(frames.PeerV6)
	StackV4, StackV6   = frames.Prefix(frames.StackV4), frames.Prefix(frames.StackV6)
)

// commandTimeout bounds every external command so a wedged tool fails the
// test instead of hanging it. It is a hang guard, not a timing assertion.
const commandTimeout = 2 * time.Minute

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
// links: Linux, CAP_NET_ADMIN and CAP_NET_RAW, and iproute2's ip.
func Require(t testing.TB) {
	t.Helper()
	if err := checkPrivileges(); err != nil {
		cannotRun(t, "needs the Linux kernel as a peer: %v", err)
	}
	RequireTools(t, "ip")
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
func UniqueName(prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + hex.EncodeToString(b[:])
}

// Namespace is a network namespace made for one test.
type Namespace struct {
	// Name is the namespace's name, as `ip netns` knows it.
	Name string
	t    testing.TB
}

// NewNamespace creates a uniquely named namespace with its loopback up and
// deletes it when the test ends.
func NewNamespace(t testing.TB) *Namespace {
	t.Helper()
	Require(t)
	ns := &Namespace{Name: UniqueName("ms-"), t: t}
	if out, err := run("ip", "netns", "add", ns.Name); err != nil {
		t.Fatalf("creating namespace %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := run("ip", "netns", "del", ns.Name); err != nil {
			t.Errorf("deleting namespace %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.MustIP("link", "set", "lo", "up")
	return ns
}

// run runs a command and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// MustRun runs a command in the test's own namespace and fails the test if
// it fails.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// IP runs `ip -n NAME args...` and returns its combined output.
func (ns *Namespace) IP(args ...string) (string, error) {
	return run("ip", append([]string{"-n", ns.Name}, args...)...)
}

// MustIP is IP that fails the test on error.
func (ns *Namespace) MustIP(args ...string) string {
	ns.t.Helper()
	out, err := ns.IP(args...)
	if err != nil {
		ns.t.Fatalf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Command returns a command that runs args inside the namespace
// (`ip netns exec NAME args...`). It runs in a process group of its own,
// and cancelling ctx kills the whole group: a shell pipeline, or a tool that
// forks a helper (tshark's dumpcap), would otherwise outlive it and keep its
// output pipe open. Wait gives up on the pipe waitDelay after the kill.
func (ns *Namespace) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	ownProcessGroup(cmd)
	cmd.WaitDelay = waitDelay
	return cmd
}

// waitDelay bounds how long Wait waits for output after the process is
// killed or has exited.
const waitDelay = 10 * time.Second

// Exec runs args inside the namespace and returns the combined output.
func (ns *Namespace) Exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := ns.Command(ctx, args...).CombinedOutput()
	return string(out), err
}

// ExecInput runs args inside the namespace with stdin and returns stdout;
// stderr goes into the error.
func (ns *Namespace) ExecInput(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := ns.Command(ctx, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Process is a command running in the background inside a namespace.
type Process struct {
	cmd    *exec.Cmd
	out    lockedBuffer
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// Start runs args in the background inside the namespace. The process is
// killed (and waited for) when the test ends, if it has not exited.
func (ns *Namespace) Start(args ...string) *Process {
	ns.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{cmd: ns.Command(ctx, args...), done: make(chan struct{}), cancel: cancel}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		cancel()
		ns.t.Fatalf("starting %s in %s: %v", strings.Join(args, " "), ns.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	ns.t.Cleanup(func() {
		p.cancel()
		<-p.done
	})
	return p
}

// Wait waits for the process to exit and returns its combined output.
func (p *Process) Wait() (string, error) {
	<-p.done
	return p.out.String(), p.err
}

// Signal sends sig to the process and any children it started (its process
// group), e.g. os.Interrupt to make tshark finish its capture file.
func (p *Process) Signal(sig os.Signal) error {
	return signalGroup(p.cmd, sig)
}

// Output returns what the process has written so far.
func (p *Process) Output() string { return p.out.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// DeleteLinkOnCleanup deletes the interface name, wherever it is (the test's
// namespace or ns), when the test ends. A device already gone is fine.
func (ns *Namespace) DeleteLinkOnCleanup(name string) {
	ns.t.Cleanup(func() {
		deleteLink(ns.t, "", name)
		deleteLink(ns.t, ns.Name, name)
	})
}

// DeleteLink deletes the interface name in the test's own namespace now.
func DeleteLink(t testing.TB, name string) {
	t.Helper()
	MustRun(t, "ip", "link", "del", "dev", name)
}

func deleteLink(t testing.TB, netns, name string) {
	args := []string{"link", "del", "dev", name}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	out, err := run("ip", args...)
	if err != nil && !strings.Contains(out, "Cannot find device") && !strings.Contains(out, "does not exist") {
		t.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// AdoptLink moves the interface name (made by the test in its own namespace,
// e.g. a TAP) into ns and gives it the kernel's addresses. The IPv6 address
// skips duplicate address detection so it is usable at once.
func (ns *Namespace) AdoptLink(name string) {
	ns.t.Helper()
	ns.DeleteLinkOnCleanup(name)
	MustRun(ns.t, "ip", "link", "set", "dev", name, "netns", ns.Name)
	ns.addressKernelEnd(name)
}

func (ns *Namespace) addressKernelEnd(name string) {
	ns.t.Helper()
	ns.MustIP("addr", "add", KernelV4.String(), "dev", name)
	ns.MustIP("addr", "add", KernelV6.String(), "dev", name, "nodad")
	ns.MustIP("link", "set", "dev", name, "up")
}

// Veth is a veth pair made by AddVeth.
type Veth struct {
	// Outside is the end left in the test's own namespace, up, with no
	// addresses: an AF_PACKET link binds to it.
	Outside string
	// Inside is the kernel's end, in the namespace, with KernelV4 and
	// KernelV6.
	Inside string
}

// AddVeth creates a veth pair, moves one end into ns with the kernel's
// addresses, and sets the outside end up with the kernel's own IP processing
// kept out of the way (no IPv6, no forwarding, no ARP replies), so only the
// stack on the AF_PACKET socket answers there.
//
// TCP segmentation offload is turned off on the inside end: a veth hands the
// other end whole 64 KB TSO frames, which an AF_PACKET reader sized for the
// MTU cannot take. Checksum offload stays on, so AF_PACKET sees frames with
// checksums the kernel has not filled in yet, as it does on a real host.
func (ns *Namespace) AddVeth() Veth {
	ns.t.Helper()
	base := UniqueName("ms")
	v := Veth{Outside: base + "o", Inside: base + "i"}
	ns.DeleteLinkOnCleanup(v.Outside)
	ns.DeleteLinkOnCleanup(v.Inside)
	MustRun(ns.t, "ip", "link", "add", "dev", v.Outside, "type", "veth", "peer", "name", v.Inside)
	if err := disableTSO(v.Inside); err != nil {
		ns.t.Fatalf("turning TSO off on %s: %v", v.Inside, err)
	}
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv6/conf/" + v.Outside + "/disable_ipv6", "1"},
		{"/proc/sys/net/ipv4/conf/" + v.Outside + "/forwarding", "0"},
		{"/proc/sys/net/ipv4/conf/" + v.Outside + "/arp_ignore", "8"},
	} {
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			ns.t.Fatalf("quieting the kernel on %s: %v", v.Outside, err)
		}
	}
	MustRun(ns.t, "ip", "link", "set", "dev", v.Inside, "netns", ns.Name)
	ns.addressKernelEnd(v.Inside)
	MustRun(ns.t, "ip", "link", "set", "dev", v.Outside, "up")
	return v
}

// NewVethPair creates a veth pair with both ends in the test's own
// namespace, up, with IPv6 off so the kernel sends nothing on its own: a
// wire between two AF_PACKET sockets. Both ends are deleted by name when the
// test ends.
func NewVethPair(t testing.TB) Veth {
	t.Helper()
	Require(t)
	base := UniqueName("ms")
	v := Veth{Outside: base + "a", Inside: base + "b"}
	t.Cleanup(func() {
		deleteLink(t, "", v.Outside)
		deleteLink(t, "", v.Inside)
	})
	MustRun(t, "ip", "link", "add", "dev", v.Outside, "type", "veth", "peer", "name", v.Inside)
	for _, end := range []string{v.Outside, v.Inside} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+end+"/disable_ipv6", []byte("1"), 0o644); err != nil {
			t.Fatalf("turning IPv6 off on %s: %v", end, err)
		}
		MustRun(t, "ip", "link", "set", "dev", end, "up")
	}
	return v
}

// NeighborMAC returns the link address the namespace's kernel has for addr
// in its neighbour table (`ip neigh`), or an error if it has none.
func (ns *Namespace) NeighborMAC(addr netip.Addr) (net.HardwareAddr, error) {
	out, err := ns.IP("neigh", "show", "to", addr.String())
	if err != nil {
		return nil, fmt.Errorf("ip neigh: %w: %s", err, out)
	}
	// "198.51.100.2 dev ms1234abcd lladdr 02:00:5e:00:53:02 REACHABLE"
	fields := strings.Fields(out)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "lladdr" {
			return net.ParseMAC(fields[i+1])
		}
	}
	return nil, fmt.Errorf("no neighbour entry with a link address for %s: %q", addr, strings.TrimSpace(out))
}

// Retry calls f up to attempts times, pausing between calls, until it
// returns nil; it returns f's last error.
func Retry(attempts int, pause time.Duration, f func() error) error {
	if attempts < 1 {
		attempts = 1
	}
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			time.Sleep(pause)
		}
		if err = f(); err == nil {
			return nil
		}
	}
	return err
}

// Eventually is Retry that fails the test with f's last error.
func Eventually(t testing.TB, attempts int, pause time.Duration, f func() error) {
	t.Helper()
	if err := Retry(attempts, pause, f); err != nil {
		t.Fatalf("after %d attempts: %v", attempts, err)
	}
}

// ErrNotYet is a convenient error for conditions polled with Retry.
var ErrNotYet = errors.New("condition not met yet")
