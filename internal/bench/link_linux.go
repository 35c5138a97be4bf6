package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
)

func runHelper(ctx context.Context, name string, args []string, stdin io.Reader, stdout io.Writer) error {
	switch name {
	case HelperGenerator:
		return runGenerator(stdin, stdout)
	case HelperKernelReflector:
		return runKernelReflector(ctx, args, stdin, stdout)
	case HelperRelay:
		return runRelayHelper(args, stdin, stdout)
	}
	return fmt.Errorf("bench-helper: unknown helper %q", name)
}

// linkEnvs are the real-link suite's two set-ups, made on first use and
// shared by its workloads: the stack under test on a TAP or AF_PACKET
// link (fast and netstack paths), and the kernel reflector on a veth pair.
type linkEnvs struct {
	cfg    Config
	stack  *stackEnv
	kernel *kernelEnv
}

func newLinkEnvs(cfg Config) (*linkEnvs, error) {
	if cfg.Link != "tap" && cfg.Link != "raw" {
		return nil, fmt.Errorf("link %q: want tap or raw", cfg.Link)
	}
	if err := requireRoot(); err != nil {
		return nil, err
	}
	return &linkEnvs{cfg: cfg}, nil
}

func (e *linkEnvs) open(ctx context.Context, path Path, fam family, size int) (Bench, error) {
	b := &linkBench{cfg: e.cfg, path: path, fam: fam, size: size}
	switch path {
	case PathFast, PathNetstack:
		if e.stack == nil {
			env, err := newStackEnv(e.cfg)
			if err != nil {
				return nil, err
			}
			e.stack = env
		}
		b.gen, b.env, b.iface = e.stack.gen, e.stack, e.stack.genIface
		b.dst = netip.AddrPortFrom(fam.local, linkFastPort)
		if path == PathNetstack {
			b.dst = netip.AddrPortFrom(fam.local, linkNetstackPort)
		}
	case PathKernel:
		if e.kernel == nil {
			env, err := newKernelEnv(e.cfg)
			if err != nil {
				return nil, err
			}
			e.kernel = env
		}
		b.gen, b.iface = e.kernel.gen, e.kernel.genIface
		b.dst = netip.AddrPortFrom(fam.local, linkKernelPort)
	default:
		return nil, fmt.Errorf("no %s path over a link", path)
	}
	return b, nil
}

func (e *linkEnvs) close() error {
	var errs []error
	if e.stack != nil {
		errs = append(errs, e.stack.close())
	}
	if e.kernel != nil {
		errs = append(errs, e.kernel.close())
	}
	return errors.Join(errs...)
}

// stackEnv is this process's stack on a real link, the generator's
// namespace on the other end: the fast reflector on linkFastPort and the
// gonet reflector on linkNetstackPort, both IPv4 and IPv6.
type stackEnv struct {
	clean    netns.Cleanup
	ns       netns.Namespace
	st       *stack.Stack
	filter   *fastfilter.Filter
	table    *policyarp.Table
	conns    []gonetConn
	wg       sync.WaitGroup
	gen      *helperProc
	genIface string // the generator's interface, in ns
}

type gonetConn interface {
	ReadFrom([]byte) (int, net.Addr, error)
	WriteTo([]byte, net.Addr) (int, error)
	Close() error
}

func newStackEnv(cfg Config) (env *stackEnv, err error) {
	env = &stackEnv{}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.close())
		}
	}()
	if env.ns, err = netns.Add(&env.clean, netns.UniqueName("msb-")); err != nil {
		return nil, err
	}
	var ep tcpipstack.LinkEndpoint
	switch cfg.Link {
	case "tap":
		// The TAP is made here and moved into the generator's namespace;
		// this process keeps its descriptor.
		name := netns.UniqueName("msbt")
		t, err := tap.New(tap.Options{Name: name, MAC: stackMAC, UDPSegmentation: true})
		if err != nil {
			return nil, err
		}
		ep = t
		env.clean.Add(func() error { t.Close(); return nil })
		if err := env.ns.AdoptLink(&env.clean, name, net.HardwareAddr(peerMAC), peerV4, peerV6); err != nil {
			return nil, err
		}
		// A queue as deep as the kernel reflector's socket buffer.
		if _, err := netns.Run("ip", "-n", env.ns.Name, "link", "set", "dev", name, "txqueuelen", "4096"); err != nil {
			return nil, err
		}
		env.genIface = name
		cfg.logf("link: made namespace %s with TAP %s", env.ns.Name, name)
	case "raw":
		// A veth pair: the AF_PACKET socket on the end left here (no
		// addresses, the kernel's IP kept off it), the generator on the
		// other.
		veth, err := env.ns.AddPeerVeth(&env.clean, peerVeth("msb"))
		if err != nil {
			return nil, err
		}
		env.genIface = veth.Inside
		cfg.logf("link: made namespace %s with veth %s and %s", env.ns.Name, veth.Inside, veth.Outside)
		r, err := raw.New(raw.Options{Interface: veth.Outside, UDPSegmentation: true})
		if err != nil {
			return nil, err
		}
		ep = r
		env.clean.Add(func() error { r.Close(); return nil })
	}
	env.st, err = stack.New(stack.Options{
		NICs: []stack.NICOptions{{Name: cfg.Link + "0", Link: ep, Addrs: []string{stackV4.String(), stackV6.String()}}},
	})
	if err != nil {
		return nil, err
	}
	env.clean.Add(func() error { env.st.Close(); return nil })
	ns, nic := env.st.Netstack(), env.st.NICID(0)
	// UDP endpoints take the default as their receive buffer: the gonet
	// reflector's room for bursts (linkSocketBuffer).
	if err := ns.SetOption(tcpip.ReceiveBufferSizeOption{Min: 4 << 10, Default: linkSocketBuffer, Max: linkSocketBuffer}); err != nil {
		return nil, fmt.Errorf("netstack receive buffer: %v", err)
	}
	if env.table, err = policyarp.New(policyarp.Options{Stack: ns, NIC: nic, BasePort: linkFastPort, Ports: 1}); err != nil {
		return nil, err
	}
	env.clean.Add(func() error { env.table.Close(); return nil })
	if env.filter, err = fastfilter.New(fastfilter.Options{Stack: ns, NIC: nic, PortMin: linkFastPort, PortMax: linkFastPort}); err != nil {
		return nil, err
	}
	env.clean.Add(func() error { env.filter.Close(); return nil })
	env.filter.SubscribeNeighborUpdates(env.table.HandleNeighborUpdate)
	lnk, ok := ep.(senderLink)
	hookable, ok2 := ep.(link.Hookable)
	if !ok || !ok2 {
		return nil, fmt.Errorf("the %s link has no raw frame write or receive hook", cfg.Link)
	}
	hookable.SetFrameHook(env.filter.Hook)
	locals := []netip.Addr{stackV4.Addr(), stackV6.Addr()}
	var refl interface {
		close() error
		unanswered() uint64
	}
	if cfg.FastReflector == ReflectorInline {
		refl, err = newFastReflector(env.filter, env.table, lnk, linkFastPort, linkFastPort, locals)
	} else {
		refl, err = newRingReflector(env.filter, env.table, lnk, linkFastPort, locals)
	}
	if err != nil {
		return nil, err
	}
	env.clean.Add(func() error {
		if n := refl.unanswered(); n > 0 {
			cfg.logf("link: the fast reflector could not answer %d datagrams (the link's queue and netstack's buffer were full)", n)
		}
		return refl.close()
	})
	for _, a := range []netip.Addr{stackV4.Addr(), stackV6.Addr()} {
		conn, err := env.st.ListenUDP(netip.AddrPortFrom(a, linkNetstackPort))
		if err != nil {
			return nil, err
		}
		env.conns = append(env.conns, conn)
		env.wg.Add(1)
		go func() {
			defer env.wg.Done()
			gonetReflect(conn)
		}()
	}
	env.clean.Add(func() error {
		for _, c := range env.conns {
			c.Close()
		}
		env.wg.Wait()
		return nil
	})
	if env.gen, err = startHelper(env.ns, cfg.Helper, HelperGenerator); err != nil {
		return nil, err
	}
	env.clean.Add(env.gen.stop)
	return env, nil
}

// gonetReflect is the reflector written on gonet: read a datagram, write it
// back to its source.
func gonetReflect(conn gonetConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		_, _ = conn.WriteTo(buf[:n], from)
	}
}

func (env *stackEnv) close() error { return env.clean.Run() }

// kernelEnv is Linux's own UDP stack as the reflector: a namespace with
// the kernel reflector, joined by a veth pair to the generator's.
type kernelEnv struct {
	clean    netns.Cleanup
	gen      *helperProc
	genIface string
}

func newKernelEnv(cfg Config) (env *kernelEnv, err error) {
	env = &kernelEnv{}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.close())
		}
	}()
	genNS, err := netns.Add(&env.clean, netns.UniqueName("msb-"))
	if err != nil {
		return nil, err
	}
	reflNS, err := netns.Add(&env.clean, netns.UniqueName("msb-"))
	if err != nil {
		return nil, err
	}
	base := netns.UniqueName("msb")
	genEnd, reflEnd := base+"g", base+"k"
	if err := netns.AddVethBetween(&env.clean, genNS, genEnd, reflNS, reflEnd); err != nil {
		return nil, err
	}
	if err := genNS.Address(genEnd, net.HardwareAddr(peerMAC), peerV4, peerV6); err != nil {
		return nil, err
	}
	if err := reflNS.Address(reflEnd, net.HardwareAddr(stackMAC), stackV4, stackV6); err != nil {
		return nil, err
	}
	env.genIface = genEnd
	cfg.logf("link: made namespaces %s and %s with veth %s and %s", genNS.Name, reflNS.Name, genEnd, reflEnd)
	refl, err := startHelper(reflNS, cfg.Helper, HelperKernelReflector,
		netip.AddrPortFrom(stackV4.Addr(), linkKernelPort).String(), netip.AddrPortFrom(stackV6.Addr(), linkKernelPort).String())
	if err != nil {
		return nil, err
	}
	env.clean.Add(refl.stop)
	if line, err := refl.readLine(20 * time.Second); err != nil {
		return nil, err
	} else if line != "ready" {
		return nil, fmt.Errorf("the kernel reflector said %q", line)
	}
	if env.gen, err = startHelper(genNS, cfg.Helper, HelperGenerator); err != nil {
		return nil, err
	}
	env.clean.Add(env.gen.stop)
	return env, nil
}

func (env *kernelEnv) close() error { return env.clean.Run() }

// linkBench is one path of a real-link workload: a round is a rate search
// and a latency measurement.
type linkBench struct {
	cfg   Config
	path  Path
	fam   family
	size  int
	dst   netip.AddrPort
	iface string // the generator's
	gen   *helperProc
	env   *stackEnv // nil for the kernel path
	prev  float64   // the previous round's loss-free rate
}

func (b *linkBench) Close() error { return nil }

func (b *linkBench) request(rate float64, ms int, latency bool) genRequest {
	return genRequest{
		Iface:  b.iface,
		SrcMAC: net.HardwareAddr(peerMAC).String(),
		DstMAC: net.HardwareAddr(stackMAC).String(),
		Src:    netip.AddrPortFrom(b.fam.peer, peerPort),
		Dst:    b.dst,
		Rate:   rate, DurationMs: ms, DrainMs: b.cfg.search().drainMs, Size: b.size, Latency: latency,
	}
}

// warmUp sends at a low rate until the reflector answers: neighbours
// resolved both ways, netstack's IPv6 address out of duplicate address
// detection, the fast path's ARP entry made.
func (b *linkBench) warmUp(ctx context.Context) error {
	var last genReply
	for range 30 {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep, err := b.gen.step(b.request(1000, 200, false))
		if err != nil {
			return err
		}
		if rep.Loss() < 0.01 {
			return nil
		}
		last = rep
	}
	return fmt.Errorf("no answer from %v: %d of %d datagrams came back", b.dst, last.Received, last.Sent)
}

// Round implements Bench.
func (b *linkBench) Round(ctx context.Context) (Result, error) {
	if err := b.warmUp(ctx); err != nil {
		return Result{}, err
	}
	// Round-trip times at a fixed moderate rate, first, before a step at
	// too high a rate leaves a queue behind; and this process's heap
	// allocations per datagram reflected meanwhile.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rep, err := b.gen.step(b.request(latencyRate, b.cfg.search().latencyMs, true))
	runtime.ReadMemStats(&after)
	if err != nil {
		return Result{}, err
	}
	var res Result
	res.LatencyP50Micros, res.LatencyP99Micros = rep.P50Micros, rep.P99Micros
	if b.env != nil && rep.Received > 0 {
		res.AllocsPerPacket = float64(after.Mallocs-before.Mallocs) / float64(rep.Received)
	}
	b.cfg.logf("  %-22s %-8s RTT at %s pkt/s: p50 %.0f µs, p99 %.0f µs, loss %.3f%%", linkName(b.fam, b.size), b.path,
		si(latencyRate), rep.P50Micros, rep.P99Micros, 100*rep.Loss())
	sp := b.cfg.search()
	good, limited, err := sp.find(ctx, b.prev, func(rate float64) (stepOutcome, error) {
		rep, err := b.gen.step(b.request(rate, sp.stepMs, false))
		if err != nil {
			return stepOutcome{}, err
		}
		b.cfg.logf("  %-22s %-8s %8s pkt/s asked, %8s sent, loss %.3f%%%s", linkName(b.fam, b.size), b.path,
			si(rate), si(rep.SendRate), 100*rep.Loss(), map[bool]string{true: " (generator-limited)"}[rep.Limited])
		return stepOutcome{ok: rep.Loss() < lossFree, limited: rep.Limited, rcvbufDrops: rep.RcvbufErrors > 0, sendRate: rep.SendRate}, nil
	})
	if err != nil {
		return Result{}, err
	}
	res.GeneratorLimited = limited
	if good > 0 {
		b.prev = good
	}
	res.PacketsPerSecond = good
	res.LossFreeRateTested = good > 0
	if good > 0 {
		res.NsPerPacket = 1e9 / good
	}

	return res, nil
}
