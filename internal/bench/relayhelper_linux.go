package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/mediahost"
)

// runRelayHelper is the relay suite's plain relays, as a Go developer
// would write one: per call two sockets, a goroutine reading each, a side
// latching its peer from what it receives and the other side sending
// there. args[0] is "kernel" (Linux's UDP sockets, ReadFromUDPAddrPort and
// WriteToUDPAddrPort) or a link, "tap:NAME" (gonet sockets of a stack on a
// TAP it makes, the same stack as mediastack's without its fast paths).
// On stdin, "calls N" ends the calls it has and makes N fresh ones (call
// i on ports relayFirstPort+4i and +4i+2), answered "ready"; it exits when
// stdin closes.
func runRelayHelper(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("relay: want kernel or tap:NAME")
	}
	var listen func(ap netip.AddrPort) (func(), error)
	var wg sync.WaitGroup
	var closers []io.Closer
	endCalls := func() {
		for _, c := range closers {
			c.Close()
		}
		closers = closers[:0]
		wg.Wait()
	}
	defer endCalls()
	if args[0] == "kernel" {
		// A socket per port: as many descriptors as the bench grants
		// (relayNoFile; Go set the soft limit to the hard one).
		var lim unix.Rlimit
		if n, _ := relayNoFile(); unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && uint64(n) > lim.Cur {
			unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(n), Max: max(lim.Max, uint64(n))})
		}
		listen = func(ap netip.AddrPort) (func(), error) {
			a, b, err := socketPair(ap, func(ap netip.AddrPort) (*net.UDPConn, error) {
				return net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
			})
			if err != nil {
				return nil, err
			}
			closers = append(closers, a, b)
			return func() {
				var peerA, peerB atomic.Pointer[netip.AddrPort]
				go kernelForward(&wg, a, &peerA, b, &peerB)
				go kernelForward(&wg, b, &peerB, a, &peerA)
			}, nil
		}
	} else {
		link, err := mediahost.ParseLink(args[0])
		if err != nil {
			return err
		}
		host, err := mediahost.New(mediahost.Options{Link: link, Addrs: []netip.Prefix{stackV4}, MAC: net.HardwareAddr(stackMAC)})
		if err != nil {
			return err
		}
		defer host.Close()
		listen = func(ap netip.AddrPort) (func(), error) {
			a, b, err := socketPair(ap, host.Stack().ListenUDP)
			if err != nil {
				return nil, err
			}
			closers = append(closers, a, b)
			return func() {
				var peerA, peerB atomic.Pointer[netip.AddrPort]
				go gonetForward(&wg, a, &peerA, b, &peerB)
				go gonetForward(&wg, b, &peerB, a, &peerA)
			}, nil
		}
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		n, err := 0, error(nil)
		if len(f) == 2 && f[0] == "calls" {
			n, err = strconv.Atoi(f[1])
		}
		if len(f) != 2 || f[0] != "calls" || err != nil {
			return fmt.Errorf("relay: %q: want calls N", sc.Text())
		}
		endCalls()
		for i := range n {
			start, err := listen(netip.AddrPortFrom(stackV4.Addr(), uint16(relayFirstPort+4*i)))
			if err != nil {
				return fmt.Errorf("relay: call %d: %w", i, err)
			}
			wg.Add(2)
			start()
		}
		fmt.Fprintln(stdout, "ready")
	}
	return sc.Err()
}

// socketPair opens a call's two sockets, on ap and two ports up.
func socketPair[C io.Closer](ap netip.AddrPort, listen func(netip.AddrPort) (C, error)) (a, b C, err error) {
	if a, err = listen(ap); err != nil {
		return a, b, err
	}
	if b, err = listen(netip.AddrPortFrom(ap.Addr(), ap.Port()+2)); err != nil {
		a.Close()
	}
	return a, b, err
}

// kernelForward reads from, latching its peer, and sends what it reads to
// to's peer once that is known.
func kernelForward(wg *sync.WaitGroup, from *net.UDPConn, fromPeer *atomic.Pointer[netip.AddrPort], to *net.UDPConn, toPeer *atomic.Pointer[netip.AddrPort]) {
	defer wg.Done()
	buf := make([]byte, 2048)
	for {
		n, src, err := from.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		if p := fromPeer.Load(); p == nil || *p != src {
			fromPeer.Store(&src)
		}
		if p := toPeer.Load(); p != nil {
			_, _ = to.WriteToUDPAddrPort(buf[:n], *p)
		}
	}
}

// gonetForward is kernelForward on gonet sockets.
func gonetForward(wg *sync.WaitGroup, from gonetConn, fromPeer *atomic.Pointer[netip.AddrPort], to gonetConn, toPeer *atomic.Pointer[netip.AddrPort]) {
	defer wg.Done()
	buf := make([]byte, 2048)
	for {
		n, addr, err := from.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		src := addr.(*net.UDPAddr).AddrPort()
		if p := fromPeer.Load(); p == nil || *p != src {
			fromPeer.Store(&src)
		}
		if p := toPeer.Load(); p != nil {
			_, _ = to.WriteTo(buf[:n], net.UDPAddrFromAddrPort(*p))
		}
	}
}
