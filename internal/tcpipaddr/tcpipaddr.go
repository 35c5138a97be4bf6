// Package tcpipaddr converts between Go's net/netip addresses, which
// mediastack's API takes, and netstack's tcpip addresses. It is a leaf that
// both stack and the fast paths (udpfast) use, so that a fast path needs no
// stack to name an address; stack.AddrFrom, AddrTo and FullAddress are
// these functions for library users.
package tcpipaddr

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// From converts a netip.Addr to a tcpip.Address (IPv4-mapped IPv6
// addresses become IPv4). The zero Addr gives the empty address.
func From(a netip.Addr) tcpip.Address {
	switch {
	case !a.IsValid():
		return tcpip.Address{}
	case a.Is4() || a.Is4In6():
		return tcpip.AddrFrom4(a.Unmap().As4())
	default:
		return tcpip.AddrFrom16(a.As16())
	}
}

// To converts a tcpip.Address to a netip.Addr (the zero Addr for an
// address that is neither 4 nor 16 bytes long).
func To(a tcpip.Address) netip.Addr {
	switch a.Len() {
	case 4:
		return netip.AddrFrom4(a.As4())
	case 16:
		return netip.AddrFrom16(a.As16())
	default:
		return netip.Addr{}
	}
}

// FullAddress converts ap to a netstack address (any NIC).
func FullAddress(ap netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{Addr: From(ap.Addr()), Port: ap.Port()}
}
