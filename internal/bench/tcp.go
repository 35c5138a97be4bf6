package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

// TCP transfer sizes: the full run, and --short's.
const (
	TCPTransferBytes      = 512 << 20
	TCPShortTransferBytes = 32 << 20
)

// tcpChunk is what the sending application writes at a time.
const tcpChunk = 1 << 20

// tcpSuite compares TCP offload's transmit forms with netstack's own
// per-MSS segments on bulk transfers: to a kernel socket over a TAP (vnet
// vs off) and over AF_PACKET on a veth (soft vs off), both as root, and
// between two stacks on the simulated network (soft vs off), anywhere.
func tcpSuite() Suite {
	return Suite{
		Name:  "tcp",
		Title: "TCP bulk transfers: offloaded large packets (vnet: the kernel segments; soft: header templates) vs netstack's per-MSS segments (off)",
		Workloads: func(cfg Config) ([]Workload, func() error, error) {
			return TCPWorkloads(cfg)
		},
		// A round is a whole transfer.
		Rounds: func(cfg Config) int {
			if cfg.Short {
				return 1
			}
			return 3
		},
		Columns: []Column{
			{"MB/s", func(r Result) string { return fmt.Sprintf("%.0f", r.MBPerSecond) }},
			{"CPU ms/MB", func(r Result) string { return fmt.Sprintf("%.2f", r.CPUMsPerMB) }},
		},
		Ratios: []RatioSpec{
			{Metric: MetricMBPerSecond, Path: PathVnet, Against: []Path{PathOff}},
			{Metric: MetricCPUMsPerMB, Path: PathVnet, Against: []Path{PathOff}},
			{Metric: MetricMBPerSecond, Path: PathSoft, Against: []Path{PathOff}},
			{Metric: MetricCPUMsPerMB, Path: PathSoft, Against: []Path{PathOff}},
		},
		Note: func([]Result) string {
			return "MB = 2^20 bytes. CPU is the sending process's (getrusage), less the kernel receiver's thread over a real link; " +
				"on sim both stacks share the process, so it is the pair's."
		},
	}
}

// TCPWorkloads returns the TCP transfer workloads: tcp-sim always, tcp-tap
// and tcp-raw when the process may make namespaces and links (root).
func TCPWorkloads(cfg Config) ([]Workload, func() error, error) {
	size := TCPTransferBytes
	if cfg.Short {
		size = TCPShortTransferBytes
	}
	ws := []Workload{{
		Name:  fmt.Sprintf("tcp-sim-%dMiB", size>>20),
		Paths: []Path{PathSoft, PathOff},
		Open: func(ctx context.Context, path Path) (Bench, error) {
			return newSimTCPBench(path, size)
		},
	}}
	return append(ws, kernelTCPWorkloads(cfg, size)...), nil, nil
}

// offloadMode maps a path to the offload mode it measures.
func offloadMode(path Path) (tcpoffload.Mode, error) {
	switch path {
	case PathVnet:
		return tcpoffload.Vnet, nil
	case PathSoft:
		return tcpoffload.Soft, nil
	case PathOff:
		return tcpoffload.Off, nil
	}
	return 0, fmt.Errorf("no TCP offload path %q", path)
}

// simTCPBench is two stacks on a simulated wire with no delay, the sender's
// link in the path's mode. A round sends size bytes over a new connection.
// There is no settler: the stacks' goroutines run freely and the driver
// advances simulated time in small steps while it moves data, so the wall
// time measures the stacks' work.
type simTCPBench struct {
	size             int
	clock            *sim.Clock
	network          *sim.Network
	sender, receiver *stack.Stack
	port             uint16
	chunk, rbuf      []byte
}

func newSimTCPBench(path Path, size int) (*simTCPBench, error) {
	mode, err := offloadMode(path)
	if err != nil {
		return nil, err
	}
	b := &simTCPBench{size: size, clock: sim.NewClock(), port: 9000, chunk: pattern(tcpChunk)}
	if b.network, err = sim.NewNetwork(sim.NetworkOptions{Clock: b.clock, Seed: 1}); err != nil {
		return nil, err
	}
	offload, err := tcpoffload.New(tcpoffload.Options{Mode: mode, Clock: b.clock}) // nil for off
	if err != nil {
		return nil, err
	}
	tx, err := b.network.NewEndpoint(sim.EndpointOptions{MAC: stackMAC, TCPOffload: offload})
	if err != nil {
		return nil, err
	}
	rx, err := b.network.NewEndpoint(sim.EndpointOptions{MAC: peerMAC})
	if err != nil {
		return nil, err
	}
	if b.sender, err = stack.New(stack.Options{NICs: []stack.NICOptions{{Name: "tx", Link: tx, Addrs: []string{stackV4.String()}}}, Clock: b.clock, Seed: 1}); err != nil {
		return nil, err
	}
	if b.receiver, err = stack.New(stack.Options{NICs: []stack.NICOptions{{Name: "rx", Link: rx, Addrs: []string{peerV4.String()}}}, Clock: b.clock, Seed: 2}); err != nil {
		b.sender.Close()
		return nil, err
	}
	return b, nil
}

// pattern returns n bytes of a repeating pattern the receiver can check.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}

func (b *simTCPBench) Round(ctx context.Context) (Result, error) {
	b.port++
	dst := tcpip.FullAddress{Addr: stack.AddrFrom(peerV4.Addr()), Port: b.port}
	var lwq, cwq waiter.Queue
	l, terr := b.receiver.Netstack().NewEndpoint(tcp.ProtocolNumber, header.IPv4ProtocolNumber, &lwq)
	if terr != nil {
		return Result{}, fmt.Errorf("listener: %s", terr)
	}
	defer l.Close()
	if err := l.Bind(tcpip.FullAddress{Port: b.port}); err != nil {
		return Result{}, fmt.Errorf("bind: %s", err)
	}
	if err := l.Listen(1); err != nil {
		return Result{}, fmt.Errorf("listen: %s", err)
	}
	c, terr := b.sender.Netstack().NewEndpoint(tcp.ProtocolNumber, header.IPv4ProtocolNumber, &cwq)
	if terr != nil {
		return Result{}, fmt.Errorf("client: %s", terr)
	}
	defer c.Close()
	if err := c.Connect(dst); err != nil {
		if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
			return Result{}, fmt.Errorf("connect: %s", err)
		}
	}
	var server tcpip.Endpoint
	var swq *waiter.Queue
	defer func() {
		if server != nil {
			server.Close()
		}
	}()
	// Connect first: the handshake is not part of the transfer.
	for i := 0; server == nil; i++ {
		if i > 100000 {
			return Result{}, errors.New("no connection on the simulated wire")
		}
		b.settle()
		b.clock.Advance(10 * time.Microsecond)
		if ep, wq, err := l.Accept(nil); err == nil {
			server, swq = ep, wq
		}
	}
	// The endpoints say when they can take or give data; the driver tries
	// them only then, so it does not contend for their locks with the
	// stacks' goroutines.
	var writable, readable atomic.Bool
	writable.Store(true)
	readable.Store(true)
	we := waiter.NewFunctionEntry(waiter.WritableEvents, func(waiter.EventMask) { writable.Store(true) })
	re := waiter.NewFunctionEntry(waiter.ReadableEvents, func(waiter.EventMask) { readable.Store(true) })
	cwq.EventRegister(&we)
	defer cwq.EventUnregister(&we)
	swq.EventRegister(&re)
	defer swq.EventUnregister(&re)
	var sink countingWriter
	r := bytes.NewReader(nil)
	sent, idle := 0, 0
	start, cpu0 := time.Now(), processCPU()
	for sink.n < b.size {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		progressed := false
		if sent < b.size && writable.Swap(false) {
			for sent < b.size {
				off := sent % len(b.chunk)
				r.Reset(b.chunk[off:min(len(b.chunk), off+b.size-sent)])
				n, err := c.Write(r, tcpip.WriteOptions{})
				sent += int(n)
				progressed = progressed || n > 0
				if err != nil {
					break
				}
			}
		}
		if readable.Swap(false) {
			for {
				res, err := server.Read(&sink, tcpip.ReadOptions{})
				if err != nil || res.Count == 0 {
					break
				}
				progressed = true
			}
		}
		if sink.bad {
			return Result{}, errors.New("the receiver got bytes other than those sent")
		}
		// Deliver the frames that are due (the wire has no delay); when
		// nothing moves, let simulated time pass for TCP's timers.
		if d, ok := b.clock.NextDue(); ok && d <= 0 {
			b.clock.Advance(0)
			progressed = true
		}
		switch {
		case progressed:
			idle = 0
		case idle < 50:
			idle++
			runtime.Gosched()
		default:
			if idle++; idle > 10_000_000 {
				return Result{}, fmt.Errorf("transfer stalled at %d of %d bytes", sink.n, b.size)
			}
			// Quiet: let the stacks finish what they are doing before time
			// moves, so that no timer fires early in simulated time.
			b.settle()
			writable.Store(true)
			readable.Store(true)
			b.clock.Advance(100 * time.Microsecond)
		}
	}
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	mb := float64(b.size) / (1 << 20)
	return Result{MBPerSecond: mb / elapsed.Seconds(), CPUMsPerMB: float64(cpu.Milliseconds()) / mb}, nil
}

// settle waits until both stacks' TCP goroutines are done with their work.
func (b *simTCPBench) settle() {
	b.sender.Settle()
	b.receiver.Settle()
}

func (b *simTCPBench) Close() error {
	b.sender.Close()
	b.receiver.Close()
	return nil
}

// countingWriter counts what the receiving application reads and checks it
// against the sender's pattern.
type countingWriter struct {
	n   int
	ref []byte
	bad bool
}

func (w *countingWriter) Write(p []byte) (int, error) {
	total := len(p)
	if w.ref == nil {
		w.ref = pattern(tcpChunk)
	}
	for len(p) > 0 {
		off := w.n % tcpChunk
		k := min(len(p), tcpChunk-off)
		if !bytes.Equal(p[:k], w.ref[off:off+k]) {
			w.bad = true
		}
		w.n += k
		p = p[k:]
	}
	return total, nil
}
