// Package echo runs the echo service (RFC 862) over UDP and TCP on netstack
// sockets of a stack: what `mediastack serve --echo` offers a peer for
// reachability checks, and what the kernel-peer tests talk to.
package echo

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/mediastack/mediastack/stack"
)

// Service is a running echo service.
type Service struct {
	mu      sync.Mutex
	closing bool
	closers []io.Closer
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// Start listens on every address in addrs (UDP and TCP) and echoes what
// arrives until Close.
func Start(st *stack.Stack, addrs []netip.AddrPort) (*Service, error) {
	s := &Service{conns: make(map[net.Conn]struct{})}
	for _, ap := range addrs {
		l, err := st.ListenTCP(ap)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("echo: tcp %s: %w", ap, err)
		}
		s.closers = append(s.closers, l)
		u, err := st.ListenUDP(ap)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("echo: udp %s: %w", ap, err)
		}
		s.closers = append(s.closers, u)
		s.wg.Add(2)
		go s.acceptLoop(l)
		go s.datagramLoop(u)
	}
	return s, nil
}

func (s *Service) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			_, _ = io.Copy(c, c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Service) datagramLoop(u net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := u.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = u.WriteTo(buf[:n], from)
	}
}

// Close stops the listeners, closes open connections and waits for every
// goroutine of the service.
func (s *Service) Close() {
	s.mu.Lock()
	s.closing = true
	for _, c := range s.closers {
		c.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
