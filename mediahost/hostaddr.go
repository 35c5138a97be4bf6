package mediahost

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// KernelAddrs returns those of addrs that the kernel holds itself on the
// interface l names, as the caller's network namespace sees it (the
// addresses come from netlink). The kernel then answers beside the stack,
// or instead of it:
//
//   - On a raw link the two share the wire: every ping is answered twice,
//     and for a UDP port only the stack serves, the kernel's ICMP port
//     unreachable can reach the peer before the stack's reply (a connected
//     socket there fails with "connection refused"). KernelFilter keeps the
//     kernel off the stack's ports when the address must be shared.
//   - On a TAP the interface is the kernel's end of the wire, a different
//     host: an address of the stack's there makes the kernel take that
//     address's traffic for itself, and the stack is unreachable. There is
//     no sharing that address.
//
// An interface that does not exist yet (a TAP New is to create) holds no
// addresses; one that does not exist at all is New's to report.
func KernelAddrs(l Link, addrs []netip.Prefix) ([]netip.Addr, error) {
	ifc, err := net.InterfaceByName(l.Name)
	if err != nil {
		if isNoSuchInterface(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("mediahost: the addresses of %s: %w", l.Name, err)
	}
	held, err := ifc.Addrs()
	if err != nil {
		return nil, fmt.Errorf("mediahost: the addresses of %s: %w", l.Name, err)
	}
	var shared []netip.Addr
	for _, p := range addrs {
		for _, h := range held {
			n, ok := h.(*net.IPNet)
			if !ok {
				continue
			}
			a, ok := netip.AddrFromSlice(n.IP)
			if ok && a.Unmap() == p.Addr().Unmap() {
				shared = append(shared, p.Addr())
				break
			}
		}
	}
	return shared, nil
}

// isNoSuchInterface reports whether err is net's "no such network
// interface" (it has no exported sentinel that errors.Is matches on every
// platform).
func isNoSuchInterface(err error) bool {
	var e *net.OpError
	return errors.As(err, &e) && e.Err != nil && e.Err.Error() == "no such network interface"
}
