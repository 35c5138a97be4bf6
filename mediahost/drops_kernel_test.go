//go:build linux

package mediahost_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/mediaport"
)

// floodDatagrams is how many datagrams the kernel sends as fast as it can:
// enough to overrun the link's kernel queue on a busy machine, few enough
// to take about a second.
const floodDatagrams = 100_000

// TestFloodDropsAddUp floods a media port from the kernel over a TAP and
// over a veth (raw link) and checks that every datagram the kernel sent is
// accounted for, within 0.1%: buffered for the application, dropped by the
// fast path (mediastack_fast_rx_dropped_packets_total) or dropped at the
// link or below it (mediastack_link_dropped_packets_total: the TAP's
// queue, the socket's buffer, the veth's backlog).
func TestFloodDropsAddUp(t *testing.T) {
	netnstest.Require(t)
	for _, kind := range []mediahost.LinkKind{mediahost.TAP, mediahost.Raw} {
		t.Run(kind.String(), func(t *testing.T) {
			ns := netnstest.NewNamespace(t)
			opts := mediahost.Options{
				Addrs: []netip.Prefix{netnstest.StackV4, netnstest.StackV6},
				Ports: mediaport.Options{PortMin: 20000, PortMax: 20009},
			}
			var h *mediahost.Host
			var err error
			if kind == mediahost.TAP {
				netnstest.RequireTUN(t)
				// Made inside the namespace, the TAP stays where the
				// link reads its kernel counters.
				name := netnstest.UniqueName("msf")
				opts.Link = mediahost.Link{Kind: mediahost.TAP, Name: name}
				err = ns.Enter(func() (err error) { h, err = mediahost.New(opts); return err })
				if err == nil {
					err = ns.Address(name, nil, netnstest.KernelV4, netnstest.KernelV6)
				}
			} else {
				opts.Link = mediahost.Link{Kind: mediahost.Raw, Name: ns.AddVeth().Outside}
				h, err = mediahost.New(opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ns.WaitPing(netnstest.StackV4.Addr()) // the kernel knows the stack's MAC: nothing waits on ARP
			port, err := h.Ports().Open(20000)
			if err != nil {
				t.Fatal(err)
			}
			drops := h.Stack().Link(0).(link.DropReporter)

			// The application reads what it can until the end.
			stop := make(chan struct{})
			var reading sync.WaitGroup
			reading.Add(1)
			go func() {
				defer reading.Done()
				bufs, sizes, addrs := make([][]byte, 64), make([]int, 64), make([]netip.AddrPort, 64)
				for i := range bufs {
					bufs[i] = make([]byte, 2048)
				}
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = port.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) // to look at stop
					_, _ = port.ReadBatch(bufs, sizes, addrs)
				}
			}()

			sent := blast(t, ns, netip.AddrPortFrom(netnstest.StackV4.Addr(), 20000), floodDatagrams)
			var accounted, buffered, fastDropped, linkDropped uint64
			var byReason []link.Drop
			netnstest.WaitFor(t, netnstest.StateTimeout, "the counters accounting for every datagram sent, within 0.1%", func() error {
				st := port.Stats()
				buffered, fastDropped = st.Buffered, st.Receive.Dropped.Total()
				byReason = drops.AppendDrops(byReason[:0])
				linkDropped = 0
				for _, d := range byReason {
					linkDropped += d.Packets
				}
				accounted = buffered + fastDropped + linkDropped
				if diff := int64(sent) - int64(accounted); diff*1000 > int64(sent) || -diff*1000 > int64(sent) {
					return fmt.Errorf("sent %d, accounted %d (buffered %d, fast path dropped %d, link dropped %d: %v)",
						sent, accounted, buffered, fastDropped, linkDropped, byReason)
				}
				return nil
			})
			close(stop)
			reading.Wait()
			t.Logf("%v: sent %d, buffered %d, fast path dropped %d, link dropped %d %v", kind, sent, buffered, fastDropped, linkDropped, nonzero(byReason))
		})
	}
}

// blast sends n datagrams of 160 bytes from the kernel in ns to dst as fast
// as it can and returns how many the kernel accepted. IP_RECVERR makes a
// datagram the kernel drops under the socket (a full qdisc) fail its send
// instead of vanishing.
func blast(t *testing.T, ns *netnstest.Namespace, dst netip.AddrPort, n int) uint64 {
	t.Helper()
	var conn *net.UDPConn
	if err := ns.Enter(func() (err error) {
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netnstest.KernelV4.Addr(), 40000)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	payload := make([]byte, 160)
	var sent uint64
	for range n {
		_, err := conn.WriteToUDPAddrPort(payload, dst)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ECONNREFUSED):
		default:
			t.Fatalf("sending datagram %d: %v", sent, err)
		}
	}
	return sent
}

func nonzero(drops []link.Drop) []link.Drop {
	var out []link.Drop
	for _, d := range drops {
		if d.Packets != 0 {
			out = append(out, d)
		}
	}
	return out
}
