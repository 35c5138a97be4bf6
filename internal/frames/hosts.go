// Package frames builds the Ethernet frames that tests and the benchmark put
// on a link, and reads the ones a stack sends: UDP datagrams over IPv4 and
// IPv6 (plain, or with an 802.1Q tag, IP options, an extension header, a
// fragment's fields or a field broken on purpose), gratuitous ARP and
// Neighbor Advertisements, with both checksums right unless asked otherwise.
// Frames are built with netstack's typed header views.
//
// It also names the hosts of the test network, in one place: host n has the
// locally administered MAC(n) and the addresses V4(n) and V6(n), all from
// ranges reserved for documentation (RFC 5737, RFC 3849), which tests use
// only on simulated links and inside network namespaces they create. Tests
// with two ends call them Stack (the stack under test) and Peer.
package frames

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Host numbers of the two ends most tests have: the stack under test, and
// the peer on its link (another stack, the kernel in a network namespace,
// the benchmark's load generator).
const (
	Peer  = 1
	Stack = 2
)

// The stack under test, host Stack.
var StackMAC, StackV4, StackV6 = MAC(Stack), V4(Stack), V6(Stack)

// The peer on the stack's link, host Peer.
var PeerMAC, PeerV4, PeerV6 = MAC(Peer), V4(Peer), V6(Peer)

// Subnet4 and Subnet6 are the subnets of the test link.
var Subnet4, Subnet6 = netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/64")

// Remote4 and Remote6 lie beyond the link, reached through a gateway.
var Remote4, Remote6 = netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8:1::9")

// MAC returns host n's Ethernet address, 02:00:00:00:00:n: unicast and
// locally administered, so it is nobody's real card.
func MAC(n byte) tcpip.LinkAddress {
	return tcpip.LinkAddress([]byte{0x02, 0, 0, 0, 0, n})
}

// V4 returns host n's IPv4 address in Subnet4, 198.51.100.n.
func V4(n byte) netip.Addr {
	a := Subnet4.Addr().As4()
	a[3] = n
	return netip.AddrFrom4(a)
}

// V6 returns host n's IPv6 address in Subnet6, 2001:db8::n (n in hex).
func V6(n byte) netip.Addr {
	a := Subnet6.Addr().As16()
	a[15] = n
	return netip.AddrFrom16(a)
}

// Prefix returns a with the length of its subnet: 198.51.100.n/24 or
// 2001:db8::n/64, the form an interface takes its address in.
func Prefix(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, Subnet4.Bits())
	}
	return netip.PrefixFrom(a, Subnet6.Bits())
}

// Addrs returns host n's two addresses as stack.NICOptions.Addrs takes
// them: V4(n)/24 and V6(n)/64.
func Addrs(n byte) []string {
	return []string{Prefix(V4(n)).String(), Prefix(V6(n)).String()}
}

// tcpipAddr is a in netstack's form.
func tcpipAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }
