package mediaport_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
)

// exchange is one way of moving datagrams from A to B on a wire: send
// queues frames, the wire's pump delivers them, receive reads them.
type exchange struct {
	send, receive func() error
	// slow counts what did not take the fast paths (sends through netstack,
	// receives through netstack or dropped); nil for gonet.
	slow func() uint64
}

const batchSize = 32

// exchanges builds each path over fresh hosts: mediaport's single and batch
// calls, net.PacketConn's, and netstack's own sockets (gonet) for
// comparison.
func exchanges(tb testing.TB, path string, size int) (*wire, exchange) {
	w, a, b := newWireHosts(tb)
	payload := make([]byte, size)
	buf := make([]byte, 2048)
	dst := netip.AddrPortFrom(addrB4, 20000)
	if path == "gonet" {
		ca, err := a.st.ListenUDP(netip.AddrPortFrom(addrA4, 20000))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ca.Close() })
		cb, err := b.st.ListenUDP(dst)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { cb.Close() })
		to := net.UDPAddrFromAddrPort(dst)
		return w, exchange{
			send:    func() error { _, err := ca.WriteTo(payload, to); return err },
			receive: func() error { _, _, err := cb.ReadFrom(buf); return err },
		}
	}
	pa, pb := simlan.Open(tb, a.m, 20000), simlan.Open(tb, b.m, 20000)
	slow := func() uint64 {
		rx := pb.Stats().Receive
		return pa.Stats().Send.FallbackTotal() + rx.NetstackDelivered + rx.Dropped.Total()
	}
	switch path {
	case "addrport":
		return w, exchange{
			send:    func() error { _, err := pa.WriteToUDPAddrPort(payload, dst); return err },
			receive: func() error { _, _, err := pb.ReadFromUDPAddrPort(buf); return err },
			slow:    slow,
		}
	case "packetconn":
		var pc net.PacketConn = pb
		to := net.UDPAddrFromAddrPort(dst)
		return w, exchange{
			send:    func() error { _, err := pa.WriteTo(payload, to); return err },
			receive: func() error { _, _, err := pc.ReadFrom(buf); return err },
			slow:    slow,
		}
	case "batch":
		out := make([][]byte, batchSize)
		in := make([][]byte, batchSize)
		for i := range out {
			out[i], in[i] = payload, make([]byte, 2048)
		}
		sizes, addrs, dsts := make([]int, batchSize), make([]netip.AddrPort, batchSize), []netip.AddrPort{dst}
		return w, exchange{
			send: func() error {
				if n, err := pa.WriteBatch(out, dsts); n != batchSize {
					return fmt.Errorf("WriteBatch sent %d: %v", n, err)
				}
				return nil
			},
			receive: func() error {
				for got := 0; got < batchSize; {
					n, err := pb.ReadBatch(in, sizes, addrs)
					if err != nil {
						return err
					}
					got += n
				}
				return nil
			},
			slow: slow,
		}
	}
	tb.Fatalf("no path %q", path)
	return nil, exchange{}
}

// warmUp sends the first datagram, which goes through netstack and waits
// there for neighbour resolution: netstack sends it from a goroutine of its
// own once the ARP reply is in, so the wire is pumped until it has gone.
func (x exchange) warmUp(tb testing.TB, w *wire) {
	tb.Helper()
	if err := x.send(); err != nil {
		tb.Fatal(err)
	}
	for range 100 {
		w.pump()
		time.Sleep(time.Millisecond)
	}
	w.pump()
	if err := x.receive(); err != nil {
		tb.Fatal(err)
	}
}

func (x exchange) once(tb testing.TB, w *wire) {
	if err := x.send(); err != nil {
		tb.Fatal(err)
	}
	w.pump()
	if err := x.receive(); err != nil {
		tb.Fatal(err)
	}
}

// TestFastPathsAllocateNothing: sending and reading a datagram through a
// media port, singly, as a net.PacketConn or in batches, allocates nothing
// once the peer's MAC is known.
func TestFastPathsAllocateNothing(t *testing.T) {
	for _, path := range []string{"addrport", "packetconn", "batch"} {
		t.Run(path, func(t *testing.T) {
			w, x := exchanges(t, path, 172)
			x.warmUp(t, w)
			x.once(t, w)
			slow := x.slow()
			// Counted under the race detector too: the filter copies into
			// the port's ring directly, with no pooled Datagram (sync.Pool
			// drops a quarter of what it is given under -race).
			if allocs := testing.AllocsPerRun(200, func() { x.once(t, w) }); allocs != 0 {
				t.Errorf("%v allocations per exchange, want 0", allocs)
			}
			if n := x.slow() - slow; n != 0 {
				t.Errorf("%d datagrams left the fast paths", n)
			}
		})
	}
}

// BenchmarkExchange moves datagrams from a port on A to a port on B over a
// wire with no clock and no goroutine: send, frames to B's link, read. The
// gonet variant does the same with netstack's own UDP sockets. ns/op and
// pkts/s are per datagram.
func BenchmarkExchange(b *testing.B) {
	for _, path := range []string{"addrport", "packetconn", "batch", "gonet"} {
		for _, size := range []int{172, 1200} {
			b.Run(fmt.Sprintf("%s/%d", path, size), func(b *testing.B) {
				w, x := exchanges(b, path, size)
				x.warmUp(b, w)
				var slow uint64
				if x.slow != nil {
					slow = x.slow()
				}
				per := 1
				if path == "batch" {
					per = batchSize
				}
				b.ReportAllocs()
				b.SetBytes(int64(size * per))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					x.once(b, w)
				}
				b.StopTimer()
				pkts := float64(b.N * per)
				b.ReportMetric(b.Elapsed().Seconds()*1e9/pkts, "ns/pkt")
				b.ReportMetric(pkts/b.Elapsed().Seconds(), "pkts/s")
				if x.slow != nil && x.slow() != slow {
					b.Errorf("%d datagrams left the fast paths", x.slow()-slow)
				}
			})
		}
	}
}

var _ net.PacketConn = (*mediaport.Port)(nil)
