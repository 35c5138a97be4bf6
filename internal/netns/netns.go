// Package netns sets up Linux network namespaces and the links between them,
// for programs that use the kernel as a real network peer: the benchmark's
// real-link suite and, through internal/netnstest, the kernel-peer tests.
//
// Everything here returns errors and leaves policy to the caller. Things
// are made under unique names (UniqueName) and deleted by name: each
// function that creates something registers its deletion with a Cleanup as
// soon as there is something to delete, so a half-made set-up is taken
// down too. External commands
// (iproute2's ip, tools run in a namespace) run with a deadline, and
// waiting for the kernel to reach a state is WaitFor with a deadline, never
// a count of attempts.
//
// Plug it in as internal/bench does:
//
//	var clean netns.Cleanup
//	defer clean.Run()
//	ns, err := netns.Add(&clean, netns.UniqueName("msb-"))
//	veth, err := ns.AddPeerVeth(&clean, netns.PeerVethOptions{Prefix: "msb", Inside: addrs})
//	p, err := ns.Start("socat", ...)
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"time"
)

// CommandTimeout bounds every external command run to completion here, so a
// wedged tool fails its caller instead of hanging it. It is a hang guard,
// generous for a loaded machine, not a timing assertion.
const CommandTimeout = 2 * time.Minute

// UniqueName returns prefix followed by 8 random hex digits; with a prefix
// of at most 6 bytes ("ms", "msb-") it fits an interface name (15 bytes).
func UniqueName(prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + hex.EncodeToString(b[:])
}

// Run runs a command in the caller's own namespace, within CommandTimeout,
// and returns its combined output. The error names the command and holds
// the output.
func Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// ip runs iproute2's ip with args, for a set-up step.
func ip(args ...string) error {
	_, err := Run("ip", args...)
	return err
}

// Cleanup collects what a set-up made, to delete it by name in reverse
// order. The zero value is ready to use.
type Cleanup struct {
	fns []func() error
}

// Add registers f to run in Run, before the functions added earlier.
func (c *Cleanup) Add(f func() error) { c.fns = append(c.fns, f) }

// Run runs the registered functions, the last added first, and forgets
// them; it returns all their errors.
func (c *Cleanup) Run() error {
	var errs []error
	for i := len(c.fns) - 1; i >= 0; i-- {
		errs = append(errs, c.fns[i]())
	}
	c.fns = nil
	return errors.Join(errs...)
}

// Namespace is a network namespace, known to `ip netns` by its name. The
// zero Namespace is the caller's own: its methods then work there.
type Namespace struct {
	// Name is the namespace's name, as `ip netns` knows it.
	Name string
}

// ipArgs puts `-n NAME` before args, unless ns is the caller's.
func (ns Namespace) ipArgs(args []string) []string {
	if ns.Name == "" {
		return args
	}
	return append([]string{"-n", ns.Name}, args...)
}

// Add creates the network namespace name with its loopback up and
// registers its deletion with clean.
func Add(clean *Cleanup, name string) (Namespace, error) {
	ns := Namespace{Name: name}
	if err := ip("netns", "add", name); err != nil {
		return ns, err
	}
	clean.Add(func() error { return ip("netns", "del", name) })
	return ns, ns.ip("link", "set", "lo", "up")
}

// IP runs `ip -n NAME args...` and returns its combined output and the
// command's own error, as exec.Cmd.CombinedOutput does.
func (ns Namespace) IP(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", ns.ipArgs(args)...).CombinedOutput()
	return string(out), err
}

// ip is IP for a set-up step: the error holds the command and its output.
func (ns Namespace) ip(args ...string) error {
	return ip(ns.ipArgs(args)...)
}

// MoveLink moves the interface name from the caller's namespace into ns.
func (ns Namespace) MoveLink(name string) error {
	return ip("link", "set", "dev", name, "netns", ns.Name)
}

// Address gives the interface dev in ns the MAC mac (unless nil) and the
// addresses, and sets it up. IPv6 addresses skip duplicate address
// detection so they are usable at once.
func (ns Namespace) Address(dev string, mac net.HardwareAddr, addrs ...netip.Prefix) error {
	if mac != nil {
		if err := ns.ip("link", "set", "dev", dev, "address", mac.String()); err != nil {
			return err
		}
	}
	for _, a := range addrs {
		args := []string{"addr", "add", a.String(), "dev", dev}
		if a.Addr().Is6() {
			args = append(args, "nodad")
		}
		if err := ns.ip(args...); err != nil {
			return err
		}
	}
	return ns.ip("link", "set", "dev", dev, "up")
}

// DeleteLink deletes the interface name in the namespace netns, or in the
// caller's if netns is empty. A device already gone is fine.
func DeleteLink(netns, name string) error {
	err := Namespace{Name: netns}.ip("link", "del", "dev", name)
	if err != nil && (strings.Contains(err.Error(), "Cannot find device") || strings.Contains(err.Error(), "does not exist")) {
		return nil
	}
	return err
}

// Exec runs args inside the namespace, within CommandTimeout, and returns
// the combined output and the command's own error.
func (ns Namespace) Exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	out, err := ns.Command(ctx, args...).CombinedOutput()
	return string(out), err
}

// ExecInput runs args inside the namespace with stdin, within
// CommandTimeout, and returns stdout; stderr goes into the error.
func (ns Namespace) ExecInput(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
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

// NeighborMAC returns the link address the namespace's kernel has for addr
// in its neighbour table (`ip neigh`), or an error if it has none.
func (ns Namespace) NeighborMAC(addr netip.Addr) (net.HardwareAddr, error) {
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
