package p2sp

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/mediastack/mediastack/stack"
)

// Network is where one node's TCP sockets live: the host's stack or
// mediastack's. Every socket a node opens (web server, file-info server,
// tracker announces, web-seed requests, BitTorrent peers) goes through it, so
// the same code runs on either.
type Network interface {
	// Listen listens for TCP on addr.
	Listen(addr netip.AddrPort) (net.Listener, error)
	// DialContext connects over TCP to address, an IP literal and a port
	// ("198.51.100.10:80", "[2001:db8::10]:80"), from the node's own
	// address of the same family: a tracker records the announce's source
	// address, and peers ban by address.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// HostNetwork is the host's stack, binding outgoing connections to the
// node's addresses (one per family; a family with none lets the kernel
// choose).
func HostNetwork(addrs ...netip.Addr) Network { return hostNetwork{addrs: addrs} }

type hostNetwork struct{ addrs []netip.Addr }

func (h hostNetwork) Listen(addr netip.AddrPort) (net.Listener, error) {
	return net.Listen("tcp", addr.String())
}

func (h hostNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	raddr, err := parseTCPAddress(network, address)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{}
	for _, a := range h.addrs {
		if a.Is4() == raddr.Addr().Unmap().Is4() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
			break
		}
	}
	return d.DialContext(ctx, "tcp", raddr.String())
}

// StackNetwork is mediastack's stack: TCP through netstack (and the TCP
// offload when the link has one). The stack picks the source address by
// route, so give a node one address per family.
func StackNetwork(st *stack.Stack) Network { return stackNetwork{st: st} }

type stackNetwork struct{ st *stack.Stack }

func (s stackNetwork) Listen(addr netip.AddrPort) (net.Listener, error) {
	l, err := s.st.ListenTCP(addr)
	if err != nil {
		return nil, err // not a nil *gonet.TCPListener in a non-nil interface
	}
	return stackListener{l}, nil
}

// stackListener hands out connections whose addresses are fixed at accept.
// A gonet connection's RemoteAddr is nil once its endpoint has lost the
// peer (a reset right after the handshake), and the torrent library calls
// RemoteAddr().Network() on accepted connections: a connection dead at
// accept is closed and skipped, a live one keeps the addresses it had.
type stackListener struct{ net.Listener }

func (l stackListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		local, remote := c.LocalAddr(), c.RemoteAddr()
		if local == nil || remote == nil {
			c.Close()
			continue
		}
		return addrConn{Conn: c, local: local, remote: remote}, nil
	}
}

// addrConn is a connection with addresses that do not change.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func (s stackNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	raddr, err := parseTCPAddress(network, address)
	if err != nil {
		return nil, err
	}
	c, err := s.st.DialTCP(ctx, raddr)
	if err != nil {
		return nil, err // not a nil *gonet.TCPConn in a non-nil interface
	}
	local, remote := c.LocalAddr(), c.RemoteAddr()
	if local == nil || remote == nil {
		c.Close()
		return nil, fmt.Errorf("p2sp: dial %s: the connection was reset at once", raddr)
	}
	return addrConn{Conn: c, local: local, remote: remote}, nil
}

func parseTCPAddress(network, address string) (netip.AddrPort, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return netip.AddrPort{}, fmt.Errorf("p2sp: dial %s %q: only TCP", network, address)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("p2sp: dial %q: addresses must be IP literals with a port", address)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// LimitReceiveBuffer caps the TCP receive buffer of every connection st
// makes from now on at size bytes (and turns its automatic growth off), so
// that no download can have more than size in flight towards the stack: a
// download capped at a rate then arrives spread out instead of in bursts
// that would queue voice behind them on the same link. client.ReceiveBuffer
// gives the size for a cap.
func LimitReceiveBuffer(st *stack.Stack, size int) error {
	ns := st.Netstack()
	opt := tcpip.TCPReceiveBufferSizeRangeOption{Min: min(4096, size), Default: size, Max: size}
	if err := ns.SetTransportProtocolOption(tcp.ProtocolNumber, &opt); err != nil {
		return fmt.Errorf("p2sp: receive buffer %d: %s", size, err)
	}
	moderate := tcpip.TCPModerateReceiveBufferOption(false)
	if err := ns.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate); err != nil {
		return fmt.Errorf("p2sp: receive buffer moderation: %s", err)
	}
	return nil
}
