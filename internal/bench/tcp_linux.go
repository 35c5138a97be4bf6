package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration { return rusageCPU(unix.RUSAGE_SELF) }

func rusageCPU(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// kernelTCPWorkloads are the transfers from this process's stack to a
// kernel socket in a network namespace: over a TAP, large packets with a
// virtio-net header (vnet) against netstack's per-MSS segments (off); over
// AF_PACKET on a veth pair, frames cut from templates (soft) against off.
// Without root they are left out, and the log says why.
func kernelTCPWorkloads(cfg Config, size int) []Workload {
	if err := requireRoot(); err != nil {
		cfg.logf("tcp: the transfers over a TAP and AF_PACKET are skipped: %v", err)
		return nil
	}
	var ws []Workload
	for _, l := range []struct {
		kind string
		path Path
	}{{"tap", PathVnet}, {"raw", PathSoft}} {
		ws = append(ws, Workload{
			Name:  fmt.Sprintf("tcp-%s-%dMiB", l.kind, size>>20),
			Paths: []Path{l.path, PathOff},
			Open: func(ctx context.Context, path Path) (Bench, error) {
				return newKernelTCPBench(l.kind, path, size)
			},
		})
	}
	return ws
}

// kernelTCPPort is where the kernel sink listens.
const kernelTCPPort = 5001

// kernelTCPBench is this process's stack on a TAP or an AF_PACKET veth end,
// in the path's offload mode, and a kernel TCP sink in the namespace at the
// other end. A round is one transfer of size bytes over a new connection.
type kernelTCPBench struct {
	clean cleanup
	ns    string
	st    *stack.Stack
	sink  *kernelSink
	size  int
	chunk []byte
}

func newKernelTCPBench(kind string, path Path, size int) (b *kernelTCPBench, err error) {
	mode, err := offloadMode(path)
	if err != nil {
		return nil, err
	}
	b = &kernelTCPBench{ns: uniqueName("mst-"), size: size, chunk: pattern(tcpChunk)}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()
	if err := b.clean.addNamespace(b.ns); err != nil {
		return nil, err
	}
	offload := tcpoffload.Options{Mode: mode}
	var ep tcpipstack.LinkEndpoint
	switch kind {
	case "tap":
		name := uniqueName("mstt")
		b.clean.add(func() error { return deleteLink(b.ns, name) })
		t, err := tap.New(tap.Options{Name: name, MAC: stackMAC, TCPOffload: offload})
		if err != nil {
			return nil, err
		}
		ep = t
		b.clean.add(func() error { t.Close(); return nil })
		if err := ip("link", "set", "dev", name, "netns", b.ns); err != nil {
			return nil, err
		}
		if err := address(b.ns, name, net.HardwareAddr(peerMAC), peerV4.String(), peerV6.String()); err != nil {
			return nil, err
		}
	case "raw":
		outside, _, err := addPeerVeth(&b.clean, b.ns, "mst")
		if err != nil {
			return nil, err
		}
		r, err := raw.New(raw.Options{Interface: outside, TCPOffload: offload})
		if err != nil {
			return nil, err
		}
		ep = r
		b.clean.add(func() error { r.Close(); return nil })
	default:
		return nil, fmt.Errorf("no TCP bench over %q", kind)
	}
	if b.st, err = stack.New(stack.Options{NICs: []stack.NICOptions{{Name: kind, Link: ep, Addrs: []string{stackV4.String()}}}}); err != nil {
		return nil, err
	}
	b.clean.add(func() error { b.st.Close(); return nil })
	if b.sink, err = startKernelSink(b.ns, kernelTCPPort); err != nil {
		return nil, err
	}
	b.clean.add(b.sink.close)
	return b, nil
}

func (b *kernelTCPBench) Round(ctx context.Context) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start, cpu0 := time.Now(), processCPU()
	c, err := b.st.DialTCP(ctx, netip.AddrPortFrom(peerV4.Addr(), kernelTCPPort))
	if err != nil {
		return Result{}, fmt.Errorf("connecting to the kernel: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for sent := 0; sent < b.size; {
		n, err := c.Write(b.chunk[:min(len(b.chunk), b.size-sent)])
		sent += n
		if err != nil {
			c.Close()
			return Result{}, fmt.Errorf("after %d of %d bytes: %w", sent, b.size, err)
		}
	}
	c.Close()
	var res sinkResult
	select {
	case res = <-b.sink.results:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("the kernel sink did not finish: %w", ctx.Err())
	}
	elapsed, cpu := time.Since(start), processCPU()-cpu0-res.cpu
	if res.err != nil {
		return Result{}, res.err
	}
	if res.bytes != int64(b.size) {
		return Result{}, fmt.Errorf("the kernel received %d of %d bytes", res.bytes, b.size)
	}
	mb := float64(b.size) / (1 << 20)
	return Result{MBPerSecond: mb / elapsed.Seconds(), CPUMsPerMB: float64(cpu.Microseconds()) / 1000 / mb}, nil
}

func (b *kernelTCPBench) Close() error { return b.clean.run() }

// kernelSink is a kernel TCP socket listening in a network namespace, read
// on an OS thread of its own that joined the namespace, so that its CPU time
// (getrusage RUSAGE_THREAD) can be told apart from the sender's. It reads
// each connection to the end, checks the bytes against the pattern, and
// reports how many arrived.
type kernelSink struct {
	lfd     int
	results chan sinkResult
	done    chan struct{}
}

type sinkResult struct {
	bytes int64
	cpu   time.Duration // the sink thread's, while it read the connection
	err   error
}

func startKernelSink(netns string, port int) (*kernelSink, error) {
	s := &kernelSink{results: make(chan sinkResult), done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(netns, port, ready)
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("kernel sink in %s: %w", netns, err)
	}
	return s, nil
}

func (s *kernelSink) run(netns string, port int, ready chan<- error) {
	defer close(s.done)
	// Never unlocked: the thread, moved into the namespace, ends with this
	// goroutine instead of going back to the runtime's pool.
	runtime.LockOSThread()
	lfd, err := s.listen(netns, port)
	if err != nil {
		ready <- err
		return
	}
	s.lfd = lfd
	ready <- nil
	buf := make([]byte, 1<<20)
	ref := pattern(tcpChunk)
	for {
		cfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // the listener was shut down
		}
		before := rusageCPU(unix.RUSAGE_THREAD)
		var res sinkResult
		for {
			n, err := unix.Read(cfd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				res.err = fmt.Errorf("kernel sink: read: %w", err)
				break
			}
			if n == 0 {
				break
			}
			for p := buf[:n]; len(p) > 0 && res.err == nil; {
				off := int(res.bytes % tcpChunk)
				k := min(len(p), tcpChunk-off)
				if !bytes.Equal(p[:k], ref[off:off+k]) {
					res.err = fmt.Errorf("kernel sink: wrong bytes at offset %d", res.bytes)
				}
				res.bytes += int64(k)
				p = p[k:]
			}
		}
		res.cpu = rusageCPU(unix.RUSAGE_THREAD) - before
		unix.Close(cfd)
		s.results <- res
	}
}

func (s *kernelSink) listen(netns string, port int) (int, error) {
	f, err := os.Open("/var/run/netns/" + netns)
	if err != nil {
		return -1, err
	}
	err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	f.Close()
	if err != nil {
		return -1, fmt.Errorf("joining the namespace: %w", err)
	}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: port}); err != nil {
		unix.Close(lfd)
		return -1, err
	}
	if err := unix.Listen(lfd, 4); err != nil {
		unix.Close(lfd)
		return -1, err
	}
	return lfd, nil
}

// close wakes the blocked accept (shutdown does, close alone would not) and
// waits for the sink's thread to end.
func (s *kernelSink) close() error {
	_ = unix.Shutdown(s.lfd, unix.SHUT_RDWR)
	<-s.done
	return unix.Close(s.lfd)
}
