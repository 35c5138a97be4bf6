// Package simapp holds applications that run inside a simulated network
// without goroutines of their own: each Step makes whatever progress is
// possible with non-blocking netstack calls and returns. The simulation
// driver calls Step between clock advances, so the applications' timing is a
// pure function of simulated time and the run is reproducible. (A gonet
// reader goroutine would wake at real-time instants, which no seed controls.)
//
// TCPTransfer and UDPStream use netstack's endpoints; RTPStreams, the demo's
// media, uses media ports (mediaport) and so the fast paths.
package simapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/mediastack/mediastack/stack"
)

func netProto(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

// TCPTransfer sends Size pseudo-random bytes from a client stack to a server
// stack over one TCP connection and checks that they arrive intact.
type TCPTransfer struct {
	payload  []byte
	listener tcpip.Endpoint
	client   tcpip.Endpoint
	server   tcpip.Endpoint
	sent     int
	recv     bytes.Buffer
	closed   bool
	Err      error

	// ReadLimit, when set, caps the receiving side as a rate-capped reader
	// does: each Step reads at most ReadLimit() bytes (0: nothing now) in
	// one read, and tells OnRead how many it got.
	ReadLimit func() int
	OnRead    func(n int)
}

// NewTCPTransfer listens on server at addr and starts connecting from
// client. The payload is drawn from seed.
func NewTCPTransfer(client, server *stack.Stack, addr netip.AddrPort, size int, seed uint64) (*TCPTransfer, error) {
	t := &TCPTransfer{payload: make([]byte, size)}
	r := rand.New(rand.NewPCG(seed, 0x7cb))
	for i := 0; i < size; i += 8 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], r.Uint64())
		copy(t.payload[i:], b[:])
	}
	proto := netProto(addr.Addr())
	var wq waiter.Queue
	l, err := server.Netstack().NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if err != nil {
		return nil, fmt.Errorf("simapp: listener: %s", err)
	}
	if err := l.Bind(tcpip.FullAddress{Port: addr.Port()}); err != nil {
		l.Close()
		return nil, fmt.Errorf("simapp: bind: %s", err)
	}
	if err := l.Listen(1); err != nil {
		l.Close()
		return nil, fmt.Errorf("simapp: listen: %s", err)
	}
	t.listener = l
	var cwq waiter.Queue
	c, err := client.Netstack().NewEndpoint(tcp.ProtocolNumber, proto, &cwq)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("simapp: client: %s", err)
	}
	t.client = c
	switch err := c.Connect(stack.FullAddress(addr)); err.(type) {
	case nil, *tcpip.ErrConnectStarted:
	default:
		t.Close()
		return nil, fmt.Errorf("simapp: connect: %s", err)
	}
	return t, nil
}

// Step accepts, writes and reads as far as possible without blocking.
func (t *TCPTransfer) Step() {
	if t.Err != nil || t.Done() {
		return
	}
	if t.server == nil {
		ep, _, err := t.listener.Accept(nil)
		if err == nil {
			t.server = ep
		}
	}
	for t.sent < len(t.payload) {
		n, err := t.client.Write(bytes.NewReader(t.payload[t.sent:]), tcpip.WriteOptions{})
		t.sent += int(n)
		if err != nil {
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				if _, ok := err.(*tcpip.ErrClosedForSend); !ok || t.sent < len(t.payload) {
					t.Err = fmt.Errorf("simapp: write: %s", err)
				}
			}
			break
		}
	}
	if t.sent == len(t.payload) && !t.closed {
		t.closed = true
		t.client.Shutdown(tcpip.ShutdownWrite)
	}
	if t.server == nil {
		return
	}
	for {
		var dst io.Writer = &t.recv
		if t.ReadLimit != nil {
			limit := t.ReadLimit()
			if limit <= 0 {
				return
			}
			dst = &tcpip.LimitedWriter{W: &t.recv, N: int64(limit)}
		}
		res, err := t.server.Read(dst, tcpip.ReadOptions{})
		if err != nil {
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				if _, eof := err.(*tcpip.ErrClosedForReceive); !eof {
					t.Err = fmt.Errorf("simapp: read: %s", err)
				}
			}
			return
		}
		if res.Count == 0 {
			return
		}
		if t.ReadLimit != nil {
			if t.OnRead != nil {
				t.OnRead(res.Count)
			}
			return
		}
	}
}

// Sent and Received count payload bytes.
func (t *TCPTransfer) Sent() int     { return t.sent }
func (t *TCPTransfer) Received() int { return t.recv.Len() }

// Done reports whether every byte arrived.
func (t *TCPTransfer) Done() bool { return t.recv.Len() >= len(t.payload) }

// Verify reports whether what arrived equals what was sent.
func (t *TCPTransfer) Verify() error {
	if t.Err != nil {
		return t.Err
	}
	if !t.Done() {
		return fmt.Errorf("simapp: %d of %d bytes arrived", t.recv.Len(), len(t.payload))
	}
	if sha256.Sum256(t.recv.Bytes()) != sha256.Sum256(t.payload) {
		return errors.New("simapp: received bytes differ from those sent")
	}
	return nil
}

// Stats returns the client endpoint's TCP statistics (retransmissions...).
func (t *TCPTransfer) Stats() *tcp.Stats {
	s, _ := t.client.Stats().(*tcp.Stats)
	return s
}

// Close closes every endpoint.
func (t *TCPTransfer) Close() {
	for _, ep := range []tcpip.Endpoint{t.client, t.server, t.listener} {
		if ep != nil {
			ep.Close()
		}
	}
}

// UDPStream sends a datagram every Interval from one stack to another, each
// carrying its sequence number, and counts what arrives.
type UDPStream struct {
	interval time.Duration
	size     int
	dst      tcpip.FullAddress
	tx, rx   tcpip.Endpoint
	buf      []byte
	next     time.Duration
	out      bytes.Buffer

	Sent, Received, OutOfOrder uint64
	highest                    uint64
	Err                        error
}

// NewUDPStream binds src and dst and starts a stream of size-byte datagrams.
func NewUDPStream(from, to *stack.Stack, src, dst netip.AddrPort, size int, interval time.Duration) (*UDPStream, error) {
	if size < 8 {
		return nil, errors.New("simapp: UDP datagrams need at least 8 bytes for the sequence number")
	}
	proto := netProto(dst.Addr())
	var wq1, wq2 waiter.Queue
	tx, err := from.Netstack().NewEndpoint(udp.ProtocolNumber, proto, &wq1)
	if err != nil {
		return nil, fmt.Errorf("simapp: %s", err)
	}
	rx, err := to.Netstack().NewEndpoint(udp.ProtocolNumber, proto, &wq2)
	if err != nil {
		tx.Close()
		return nil, fmt.Errorf("simapp: %s", err)
	}
	s := &UDPStream{interval: interval, size: size, dst: stack.FullAddress(dst), tx: tx, rx: rx, buf: make([]byte, size)}
	if err := tx.Bind(stack.FullAddress(src)); err != nil {
		s.Close()
		return nil, fmt.Errorf("simapp: bind %s: %s", src, err)
	}
	if err := rx.Bind(stack.FullAddress(dst)); err != nil {
		s.Close()
		return nil, fmt.Errorf("simapp: bind %s: %s", dst, err)
	}
	return s, nil
}

// Step sends the datagrams due by now and reads what arrived.
func (s *UDPStream) Step(now time.Duration) {
	for s.next <= now {
		binary.BigEndian.PutUint64(s.buf, s.Sent)
		if _, err := s.tx.Write(bytes.NewReader(s.buf), tcpip.WriteOptions{To: &s.dst}); err != nil {
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				// No route or neighbour yet counts as a loss, as on a real host.
				if _, unresolved := err.(*tcpip.ErrHostUnreachable); !unresolved {
					s.Err = fmt.Errorf("simapp: udp write: %s", err)
				}
			}
		}
		s.Sent++
		s.next += s.interval
	}
	for {
		s.out.Reset()
		res, err := s.rx.Read(&s.out, tcpip.ReadOptions{})
		if err != nil {
			return
		}
		if res.Count >= 8 {
			seq := binary.BigEndian.Uint64(s.out.Bytes())
			if s.Received > 0 && seq < s.highest {
				s.OutOfOrder++
			}
			s.highest = max(s.highest, seq)
			s.Received++
		}
	}
}

// Close closes both endpoints.
func (s *UDPStream) Close() {
	s.tx.Close()
	s.rx.Close()
}
