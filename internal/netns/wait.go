package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNotYet is what a condition polled with WaitFor returns, alone or
// wrapped in a description of what it saw, while its state is not there.
var ErrNotYet = errors.New("not yet")

// StateTimeout is how long set-up here waits for the kernel to reach a
// state (a veth's carrier up), and a fair default for WaitFor: a hang
// guard, generous because a loaded machine (load average 10 on 2 cores) is
// slow, not a timing assertion.
const StateTimeout = time.Minute

// Polling starts at minPause between checks and backs off to maxPause, so
// a state reached at once costs little and a slow one does not keep a
// loaded machine busier.
const (
	minPause = 5 * time.Millisecond
	maxPause = 100 * time.Millisecond
)

// WaitFor checks cond until it returns nil, for up to timeout. It returns
// nil, or an error that says what it waited for (what: "carrier on
// ms1234abcd", "socat's UDP socket bound"), for how long, and cond's last
// error. The timeout is a hang guard: make it generous (tens of seconds),
// since a loaded machine is slow, and assert nothing about how long the
// wait took.
func WaitFor(timeout time.Duration, what string, cond func() error) error {
	start := time.Now()
	pause := minPause
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if waited := time.Since(start); waited >= timeout {
			return fmt.Errorf("waited %v for %s, in vain: %w", waited.Round(time.Millisecond), what, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPause)
	}
}

// CarrierUp returns nil once dev in ns is up, has its carrier (a TAP has a
// reader, a veth's peer is up) and the kernel has acted on that (operstate
// UP, or UNKNOWN for a device whose carrier was on when it came up): until
// then the kernel drops what is sent on it.
func (ns Namespace) CarrierUp(dev string) error {
	out, err := ns.IP("-o", "link", "show", "dev", dev)
	if err != nil {
		return fmt.Errorf("ip link show %s: %w: %s", dev, err, strings.TrimSpace(out))
	}
	_, flags, _ := strings.Cut(out, "<")
	flags, _, _ = strings.Cut(flags, ">")
	has := func(flag string) bool { return slices.Contains(strings.Split(flags, ","), flag) }
	if !has("UP") || !has("LOWER_UP") || !(strings.Contains(out, " state UP ") || strings.Contains(out, " state UNKNOWN ")) {
		return fmt.Errorf("%s: %s: %w", dev, strings.TrimSpace(out), ErrNotYet)
	}
	return nil
}

// AddressReady returns nil once addr is on an interface in ns and usable:
// duplicate address detection, if any, is done.
func (ns Namespace) AddressReady(addr netip.Addr) error {
	out, err := ns.IP("-o", "addr", "show", "to", addr.String())
	if err != nil {
		return fmt.Errorf("ip addr show to %s: %w: %s", addr, err, strings.TrimSpace(out))
	}
	switch {
	case strings.TrimSpace(out) == "":
		return fmt.Errorf("%s is on no interface: %w", addr, ErrNotYet)
	case strings.Contains(out, "tentative"):
		return fmt.Errorf("%s: duplicate address detection not done: %s: %w", addr, strings.TrimSpace(out), ErrNotYet)
	case strings.Contains(out, "dadfailed"):
		return fmt.Errorf("%s: duplicate address detection failed: %s", addr, strings.TrimSpace(out))
	}
	return nil
}

// NeighborKnown returns nil once ns's kernel has a link address for addr.
func (ns Namespace) NeighborKnown(addr netip.Addr) error {
	if _, err := ns.NeighborMAC(addr); err != nil {
		return fmt.Errorf("%w: %w", err, ErrNotYet)
	}
	return nil
}

// Listening returns nil once a socket in ns is bound to port: network is
// "udp" (any datagram socket on the port) or "tcp" (a listener).
func (ns Namespace) Listening(network string, port uint16) error {
	flag := map[string]string{"udp": "-uan", "tcp": "-tln"}[network]
	if flag == "" {
		return fmt.Errorf("Listening: network %q, want udp or tcp", network)
	}
	out, err := ns.Exec("ss", "-H", flag, "sport = :"+strconv.Itoa(int(port)))
	if err != nil {
		return fmt.Errorf("ss %s: %w: %s", flag, err, strings.TrimSpace(out))
	}
	if strings.TrimSpace(out) == "" {
		return fmt.Errorf("no %s socket on port %d: %w", network, port, ErrNotYet)
	}
	return nil
}

// Ping returns nil if addr answers one ping from ns within a second: the
// address is up and reachable (for a stack's IPv6 address, its duplicate
// address detection is done).
func (ns Namespace) Ping(addr netip.Addr) error {
	family := "-4"
	if addr.Is6() {
		family = "-6"
	}
	out, err := ns.Exec("ping", family, "-c", "1", "-W", "1", addr.String())
	if err != nil {
		return fmt.Errorf("ping %s: %w: %s: %w", addr, err, strings.TrimSpace(out), ErrNotYet)
	}
	return nil
}
