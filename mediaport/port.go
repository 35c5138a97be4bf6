package mediaport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/udpfast"
)

// Port is one media port: a net.PacketConn over the fast paths.
type Port struct {
	m      *Manager
	port   uint16
	local  netip.AddrPort
	reg    *fastfilter.Registration
	ring   *fastfilter.Ring // nil for OpenFunc ports
	lane   tcpip.Endpoint   // the netstack endpoint, opened for the first send through netstack; guarded by wmu
	closed atomic.Bool

	// Read side. A reader that finds the ring empty waits in the ring
	// (Ring.Wait) for a datagram, for the ring to close, or for its
	// deadline's channel (rdCancel; nil for OpenFunc ports) to close.
	rdMu      sync.Mutex
	rdTimer   *time.Timer   // closes rdCancel when the read deadline passes
	rdCancel  chan struct{} // closed once the read deadline has passed
	fromCache atomic.Pointer[cachedAddr]

	// Write side: a udpfast.Sender has one writer at a time.
	writeDeadline atomic.Int64 // UnixNano; 0: none
	wmu           sync.Mutex
	scratch       *udpfast.Scratch                  // nil until the first send
	tos           uint8                             // DSCP << 2, of both lanes
	lastDst       netip.Addr                        // destination the last send resolved a sender for
	lastSender    *udpfast.Sender                   // and that sender
	oneDst        [1]netip.AddrPort                 // WriteBatch's single destination, unmapped
	senders       atomic.Pointer[[]*udpfast.Sender] // one per source address; copy on write
}

var _ net.PacketConn = (*Port)(nil)

// cachedAddr is the net.Addr ReadFrom returned last, reused while the source
// stays the same so that steady reads from one peer allocate nothing.
type cachedAddr struct {
	ap   netip.AddrPort
	addr *net.UDPAddr
}

// Port returns the port number.
func (p *Port) Port() uint16 { return p.port }

// AddrPort returns the port on the NIC's main address (LocalAddr as a
// netip.AddrPort).
func (p *Port) AddrPort() netip.AddrPort { return p.local }

// LocalAddr implements net.PacketConn: a *net.UDPAddr with the NIC's main
// IPv4 address (its first global IPv6 address when it has no IPv4 one). The
// port receives on every address of the NIC, IPv4 and IPv6.
func (p *Port) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(p.local) }

// ReadFrom implements net.PacketConn. The net.Addr is a *net.UDPAddr; while
// datagrams keep coming from the same source it is the same value each time
// (no allocation): treat it as read-only.
func (p *Port) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := p.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, p.netAddr(from), nil
}

func (p *Port) netAddr(ap netip.AddrPort) net.Addr {
	if c := p.fromCache.Load(); c != nil && c.ap == ap {
		return c.addr
	}
	c := &cachedAddr{ap: ap, addr: net.UDPAddrFromAddrPort(ap)}
	p.fromCache.Store(c)
	return c.addr
}

// ReadFromUDPAddrPort reads one datagram into b, blocking until there is
// one, the read deadline passes or the port is closed. A datagram longer
// than b is truncated, the rest discarded, as a UDP socket does. It
// allocates nothing.
func (p *Port) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, info, err := p.ReadPacket(b)
	return n, info.Src, err
}

// never is a deadline long past: the ring's reads with it take what is held
// and never wait (the port does its own waiting).
var never = time.Unix(1, 0)

// ReadPacket is ReadFromUDPAddrPort that also returns what is known about
// the datagram: its destination address, IP version, the lane it took and,
// with Options.Ring.Timestamps, its receive time. info.Size is the
// datagram's length, more than n when b was too short.
func (p *Port) ReadPacket(b []byte) (n int, info fastfilter.PacketInfo, err error) {
	if p.ring == nil {
		return 0, info, p.opError("read", nil, ErrNoBuffer)
	}
	for {
		if p.closed.Load() {
			return 0, fastfilter.PacketInfo{}, p.opError("read", nil, net.ErrClosed)
		}
		n, info, err = p.ring.ReadPacket(b, never)
		if err == nil {
			return n, info, nil
		}
		if err = p.readError(err); err == nil {
			err = p.wait()
		}
		if err != nil {
			return 0, fastfilter.PacketInfo{}, p.opError("read", nil, err)
		}
	}
}

// ReadBatch reads up to len(bufs) datagrams: datagram i into bufs[i], its
// length into sizes[i] and, when addrs is not nil, its source into addrs[i]
// (sizes and addrs at least as long as bufs). It blocks like ReadFrom until
// at least one datagram is there, then takes what is held without waiting
// for more, and allocates nothing.
func (p *Port) ReadBatch(bufs [][]byte, sizes []int, addrs []netip.AddrPort) (int, error) {
	if p.ring == nil {
		return 0, p.opError("read", nil, ErrNoBuffer)
	}
	if len(sizes) < len(bufs) || (addrs != nil && len(addrs) < len(bufs)) {
		return 0, p.opError("read", nil, errors.New("mediaport: ReadBatch: sizes or addrs shorter than bufs"))
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	for {
		if p.closed.Load() {
			return 0, p.opError("read", nil, net.ErrClosed)
		}
		k, err := p.ring.ReadBatch(bufs, sizes, addrs, never)
		if err == nil {
			return k, nil
		}
		if err = p.readError(err); err == nil {
			err = p.wait()
		}
		if err != nil {
			return 0, p.opError("read", nil, err)
		}
	}
}

// readError sorts an error of a non-waiting ring read: nil when the ring was
// merely empty, else the error to return.
func (p *Port) readError(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case errors.Is(err, net.ErrClosed) || p.closed.Load():
		return net.ErrClosed
	default:
		return err
	}
}

// wait blocks until a datagram may be there (nil), the read deadline has
// passed (os.ErrDeadlineExceeded) or the port is closed (net.ErrClosed).
// A datagram that is there already wins over a passed deadline: a read with
// a deadline in the past is a non-blocking read.
func (p *Port) wait() error {
	p.rdMu.Lock()
	cancel := p.rdCancel
	p.rdMu.Unlock()
	err := p.ring.Wait(cancel)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.rdMu.Lock()
		moved := p.rdCancel != cancel // a new deadline was set meanwhile
		p.rdMu.Unlock()
		if moved {
			return nil
		}
	}
	return err
}

func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if ns := t.UnixNano(); ns != 0 {
		return ns
	}
	return 1 // the epoch itself: long past, not "no deadline"
}

// SetDeadline implements net.PacketConn.
func (p *Port) SetDeadline(t time.Time) error {
	p.SetWriteDeadline(t)
	return p.SetReadDeadline(t)
}

// SetReadDeadline implements net.PacketConn: reads waiting past t return
// an error wrapping os.ErrDeadlineExceeded, reads already blocked included.
// A zero t means no deadline. With a deadline in the past, a read returns
// a datagram held already, else fails at once: a non-blocking read.
func (p *Port) SetReadDeadline(t time.Time) error {
	if p.closed.Load() {
		return p.opError("set", nil, net.ErrClosed)
	}
	if p.ring == nil {
		return nil // nothing to read (ErrNoBuffer): no read to time out
	}
	p.rdMu.Lock()
	defer p.rdMu.Unlock()
	// As gonet does: keep the channel readers wait on unless the old
	// deadline has closed it (or its timer is closing it right now).
	if p.rdTimer != nil && !p.rdTimer.Stop() {
		p.rdCancel = make(chan struct{})
	}
	select {
	case <-p.rdCancel:
		p.rdCancel = make(chan struct{})
	default:
	}
	p.rdTimer = nil
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		close(p.rdCancel)
		return nil
	}
	cancel := p.rdCancel
	p.rdTimer = time.AfterFunc(d, func() { close(cancel) })
	return nil
}

// SetWriteDeadline implements net.PacketConn. Writes never wait for room
// (a full link queue sends through netstack, a full netstack buffer is an
// error), so a deadline only fails writes started after it passed.
func (p *Port) SetWriteDeadline(t time.Time) error {
	if p.closed.Load() {
		return p.opError("set", nil, net.ErrClosed)
	}
	p.writeDeadline.Store(deadlineNanos(t))
	return nil
}

// WriteTo implements net.PacketConn; addr must be a *net.UDPAddr (or any
// net.Addr whose String is ip:port).
func (p *Port) WriteTo(b []byte, addr net.Addr) (int, error) {
	var dst netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		dst = a.AddrPort()
	case nil:
		return 0, p.opError("write", nil, errors.New("mediaport: nil destination address"))
	default:
		var err error
		if dst, err = netip.ParseAddrPort(a.String()); err != nil {
			return 0, p.opError("write", addr, fmt.Errorf("mediaport: destination %v is not ip:port", addr))
		}
	}
	return p.WriteToUDPAddrPort(b, dst)
}

// WriteToUDPAddrPort sends b to dst from the port: a raw frame when the
// port's policy ARP entry for dst is valid, else through netstack. It
// allocates nothing on the fast path.
func (p *Port) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	dst = unmap(dst)
	if err := p.writeCheck(); err != nil {
		return 0, p.opError("write", nil, err)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closed.Load() {
		return 0, p.opError("write", nil, net.ErrClosed)
	}
	s, err := p.senderFor(dst)
	if err == nil {
		err = s.Send(b, dst)
	}
	if err != nil {
		return 0, p.opError("write", net.UDPAddrFromAddrPort(dst), err)
	}
	return len(b), nil
}

// WriteBatch sends bufs[i] to addrs[i] (or every datagram to addrs[0] when
// addrs has one element), in order, with as few link writes as the fast
// path allows. It returns how many datagrams were sent; on error,
// bufs[n:] were not. It allocates nothing on the fast path.
func (p *Port) WriteBatch(bufs [][]byte, addrs []netip.AddrPort) (int, error) {
	if len(addrs) != 1 && len(addrs) != len(bufs) {
		return 0, p.opError("write", nil, udpfast.ErrBatchShape)
	}
	if err := p.writeCheck(); err != nil {
		return 0, p.opError("write", nil, err)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closed.Load() {
		return 0, p.opError("write", nil, net.ErrClosed)
	}
	if len(addrs) == 1 || len(bufs) == 0 {
		dst := unmap(addrs[0])
		s, err := p.senderFor(dst)
		if err != nil {
			return 0, p.opError("write", net.UDPAddrFromAddrPort(dst), err)
		}
		p.oneDst[0] = dst
		n, err := s.SendBatch(bufs, p.oneDst[:])
		if err != nil {
			return n, p.opError("write", net.UDPAddrFromAddrPort(dst), err)
		}
		return n, nil
	}
	// Runs of consecutive datagrams that go out from the same source
	// address share a SendBatch.
	for i := 0; i < len(bufs); {
		s, err := p.senderFor(unmap(addrs[i]))
		if err != nil {
			return i, p.opError("write", net.UDPAddrFromAddrPort(addrs[i]), err)
		}
		j := i + 1
		for j < len(bufs) {
			next, err := p.senderFor(unmap(addrs[j]))
			if err != nil || next != s {
				break
			}
			j++
		}
		n, err := s.SendBatch(bufs[i:j], addrs[i:j])
		if err != nil {
			return i + n, p.opError("write", net.UDPAddrFromAddrPort(addrs[i+n]), err)
		}
		i = j
	}
	return len(bufs), nil
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	if a := ap.Addr(); a.Is4In6() {
		return netip.AddrPortFrom(a.Unmap(), ap.Port())
	}
	return ap
}

func (p *Port) writeCheck() error {
	if p.closed.Load() {
		return net.ErrClosed
	}
	if dl := p.writeDeadline.Load(); dl != 0 && time.Now().UnixNano() >= dl {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// senderFor returns the sender for dst: the one of the source address
// netstack routes dst from, made on first use. p.wmu must be held. The
// common case, the same destination address as last time, costs one
// comparison.
func (p *Port) senderFor(dst netip.AddrPort) (*udpfast.Sender, error) {
	if dst.Addr() == p.lastDst && p.lastSender != nil {
		return p.lastSender, nil
	}
	if !dst.Addr().IsValid() || dst.Port() == 0 {
		return nil, udpfast.ErrBadDestination
	}
	local, err := p.m.localAddrFor(dst.Addr())
	if err != nil {
		return nil, err
	}
	var s *udpfast.Sender
	var senders []*udpfast.Sender
	if cur := p.senders.Load(); cur != nil {
		senders = *cur
	}
	for _, c := range senders {
		if c.Local().Addr() == local {
			s = c
			break
		}
	}
	if s == nil {
		if p.scratch == nil { // made for the first send: an idle port does without
			p.scratch = udpfast.NewScratch(udpfast.DefaultBatch, header.EthernetMinimumSize+int(p.m.link.MTU()))
		}
		s, err = udpfast.New(udpfast.Options{
			Table:    p.m.table,
			Link:     p.m.link,
			Fallback: portLane{p},
			Local:    netip.AddrPortFrom(local, p.port),
			TOS:      p.tos,
			IDs:      p.m.ids,
			Scratch:  p.scratch, // the senders of a port are driven under p.wmu, one at a time
		})
		if err != nil {
			return nil, err
		}
		grown := append(append([]*udpfast.Sender(nil), senders...), s)
		p.senders.Store(&grown)
	}
	p.lastDst, p.lastSender = dst.Addr(), s
	return s, nil
}

// maxDSCP is the largest code point: DSCP is 6 bits.
const maxDSCP = 63

// SetDSCP changes the Differentiated Services code point the port marks
// the datagrams it sends with, on the fast lane and through netstack
// (Options.DSCP is the default; 0 here is unmarked, CS0).
func (p *Port) SetDSCP(dscp uint8) error {
	if dscp > maxDSCP {
		return p.opError("set", nil, fmt.Errorf("mediaport: DSCP %d: want 0 to %d", dscp, maxDSCP))
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closed.Load() {
		return p.opError("set", nil, net.ErrClosed)
	}
	if err := p.setTOSLocked(dscp << 2); err != nil {
		return p.opError("set", nil, err)
	}
	return nil
}

// setTOSLocked sets the TOS / traffic class byte of both lanes: the
// netstack endpoint's options (IPv4 and IPv6, as it is dual-stack) and the
// fast senders' templates. p.wmu must be held.
func (p *Port) setTOSLocked(tos uint8) error {
	if p.lane != nil {
		if err := setEndpointTOS(p.lane, tos); err != nil {
			return fmt.Errorf("mediaport: port %d: %w", p.port, err)
		}
	}
	p.tos = tos
	if cur := p.senders.Load(); cur != nil {
		for _, s := range *cur {
			s.SetTOS(tos)
		}
	}
	return nil
}

func setEndpointTOS(ep tcpip.Endpoint, tos uint8) error {
	for _, opt := range []tcpip.SockOptInt{tcpip.IPv4TOSOption, tcpip.IPv6TrafficClassOption} {
		if err := ep.SetSockOptInt(opt, int(tos)); err != nil {
			return fmt.Errorf("setting the netstack endpoint's TOS: %s", err)
		}
	}
	return nil
}

// portLane is a port's netstack lane as the fast senders' fallback: it
// opens the port's netstack endpoint for the first datagram, so a port
// that never sends through netstack costs none. Called under p.wmu, as
// the senders are.
type portLane struct{ p *Port }

func (l portLane) SendViaNetstack(payload []byte, dst netip.AddrPort) error {
	p := l.p
	if p.lane == nil {
		ep, err := p.reg.OpenNetstackEndpoint(p.port)
		if err != nil {
			return err
		}
		if err := setEndpointTOS(ep, p.tos); err != nil {
			return err
		}
		p.lane = ep
	}
	return udpfast.EndpointFallback{Endpoint: p.lane}.SendViaNetstack(payload, dst)
}

// SetAcceptBroadcast makes the port receive (true) or not (false)
// datagrams sent to a broadcast address or a multicast group the NIC is in
// (Options.AcceptBroadcast is the default).
func (p *Port) SetAcceptBroadcast(accept bool) { p.reg.SetAcceptBroadcast(accept) }

// Close implements net.PacketConn: it unregisters the port, releases its
// netstack endpoint and its number, and makes blocked and later reads and
// writes fail with net.ErrClosed. Datagrams still buffered are discarded.
// Closing twice is harmless.
func (p *Port) Close() error {
	p.wmu.Lock() // let a write in progress finish
	already := p.closed.Swap(true)
	p.wmu.Unlock()
	if already {
		return nil
	}
	p.reg.Close()
	if p.ring != nil {
		p.ring.Close()
	}
	p.rdMu.Lock()
	if p.rdTimer != nil {
		p.rdTimer.Stop()
	}
	p.rdMu.Unlock()
	p.m.release(p)
	return nil
}

func (p *Port) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: p.LocalAddr(), Addr: addr, Err: err}
}
