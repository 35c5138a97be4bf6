package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/bencode"
	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/internal/rtpengine"
	"github.com/mediastack/mediastack/internal/sipua"
)

// relayNG is the ng port of the relays driven over ng, on the loopback
// of the relay's namespace.
var relayNG = netip.MustParseAddrPort("127.0.0.1:2223")

// relayEnvs are the relay suite's set-ups, made on first use and shared by
// its workloads.
type relayEnvs struct {
	cfg  Config
	envs map[Path]*relayEnv
}

func relaySuiteWorkloads(cfg Config) ([]Workload, func() error, error) {
	if err := requireRoot(); err != nil {
		return nil, nil, err
	}
	e := &relayEnvs{cfg: cfg, envs: map[Path]*relayEnv{}}
	paths := []Path{PathWire, PathMediastackTap, PathMediastackRaw, PathGonetTap, PathGoKernel}
	if _, err := exec.LookPath("rtpengine"); err == nil {
		paths = append(paths, PathRtpengine)
	} else {
		cfg.logf("relay: rtpengine is not installed (apt-get install rtpengine-daemon): no rtpengine rows")
	}
	if len(cfg.RelayPaths) > 0 {
		paths = slices.DeleteFunc(paths, func(p Path) bool { return p != PathWire && !slices.Contains(cfg.RelayPaths, p) })
	}
	relays := paths[1:] // the wire relays nothing: fixed-rate rows only
	plan := cfg.relayPlan()
	maxFiles, why := relayNoFile()
	var ws []Workload
	add := func(name string, paths []Path, round func(b *relayBench, ctx context.Context) (Result, error), calls int) {
		paths = slices.DeleteFunc(slices.Clone(paths), func(p Path) bool {
			need := relayFilesFor(p, calls)
			if need <= maxFiles {
				return false
			}
			if cfg.Rows == nil || cfg.Rows.MatchString(name) {
				cfg.logf("relay: %s: no %s row: its %d calls take %d descriptors (a socket per port), above the %d it may open (%s)",
					name, p, calls, need, maxFiles, why)
			}
			return true
		})
		ws = append(ws, Workload{Name: name, Paths: paths, Open: func(ctx context.Context, p Path) (Bench, error) {
			env, err := e.env(p)
			if err != nil {
				return nil, err
			}
			b := &relayBench{env: env, calls: calls, round: round, silent: name == relayName("idle", 0, plan.idleCalls)}
			if err := env.setCalls(calls); err != nil {
				return nil, fmt.Errorf("%d calls: %w", calls, err)
			}
			return b, nil
		}})
	}
	for _, rate := range plan.rates {
		for _, k := range plan.calls {
			add(relayName("", rate, k), paths, func(b *relayBench, ctx context.Context) (Result, error) {
				return b.fixedRate(ctx, rate, plan.stepMs)
			}, k)
		}
	}
	for _, k := range plan.searchCalls {
		add(relayName("search", 0, k), relays, func(b *relayBench, ctx context.Context) (Result, error) {
			return b.search(ctx, plan.search)
		}, k)
	}
	for _, k := range plan.burstCalls {
		add(relayName("burst", 0, k), relays, func(b *relayBench, ctx context.Context) (Result, error) {
			return b.burst(ctx, plan)
		}, k)
	}
	add(relayName("idle", 0, plan.idleCalls), relays, func(b *relayBench, ctx context.Context) (Result, error) {
		return b.idle(ctx, plan.idleMs)
	}, plan.idleCalls)
	return ws, e.close, nil
}

func (e *relayEnvs) env(p Path) (*relayEnv, error) {
	if env := e.envs[p]; env != nil {
		return env, nil
	}
	env, err := newRelayEnv(e.cfg, p)
	if err != nil {
		return nil, fmt.Errorf("setting up %s: %w", p, err)
	}
	e.envs[p] = env
	return env, nil
}

func (e *relayEnvs) close() error {
	var errs []error
	for _, env := range e.envs {
		errs = append(errs, env.close())
	}
	return errors.Join(errs...)
}

// relayEnv is one relay under test, in a process of its own, and the load
// generator in a namespace of its own that drives it.
type relayEnv struct {
	cfg      Config
	path     Path
	clean    netns.Cleanup
	gen      *helperProc
	genIface string
	// relay is the relay's process (nil for the wire); its CPU time and
	// context switches are read from /proc.
	relay *netns.Process
	// makeCalls sets up n calls of generation gen (call IDs unique over
	// the run) and returns their legs; dropCalls ends them.
	makeCalls func(gen, n int) ([]genLeg, error)
	dropCalls func(gen, n int) error
	callGen   int         // the calls' generation: one per workload
	calls     int         // how many there are now
	legs      []genLeg    // theirs
	legsFor   *relayBench // whose legs the generator has now
}

// newRelayEnv sets up path: the generator's namespace and, but for the
// relays on a TAP (which is in the generator's namespace), the relay's,
// joined by a veth pair; the relay process; the generator.
func newRelayEnv(cfg Config, path Path) (_ *relayEnv, err error) {
	env := &relayEnv{cfg: cfg, path: path}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.close())
		}
	}()
	genNS, err := netns.Add(&env.clean, netns.UniqueName("msr-"))
	if err != nil {
		return nil, err
	}
	var relayNS netns.Namespace
	var relayEnd string
	tapName := netns.UniqueName("msrt")
	switch path {
	case PathMediastackTap, PathGonetTap:
		env.genIface = tapName
		if err := noIPv6(genNS); err != nil {
			return nil, err
		}
	default:
		if relayNS, err = netns.Add(&env.clean, netns.UniqueName("msr-")); err != nil {
			return nil, err
		}
		for _, ns := range []netns.Namespace{genNS, relayNS} {
			if err := noIPv6(ns); err != nil {
				return nil, err
			}
		}
		base := netns.UniqueName("msr")
		env.genIface, relayEnd = base+"g", base+"r"
		if err := netns.AddVethBetween(&env.clean, genNS, env.genIface, relayNS, relayEnd); err != nil {
			return nil, err
		}
		if err := genNS.Address(env.genIface, net.HardwareAddr(peerMAC), peerV4); err != nil {
			return nil, err
		}
		var addrs []netip.Prefix
		if path != PathMediastackRaw { // the kernel's IP is kept off a raw link
			addrs = []netip.Prefix{stackV4}
		}
		if err := relayNS.Address(relayEnd, net.HardwareAddr(stackMAC), addrs...); err != nil {
			return nil, err
		}
	}
	helper := cfg.Helper
	if len(helper) == 0 {
		return nil, errors.New("no command to run the relays and the load generator with (Config.Helper)")
	}
	ports := fmt.Sprintf("%d-%d", relayFirstPort, relayLastPort)
	serve := func(ns netns.Namespace, link string) error {
		args := append(append([]string{}, helper...), "serve", "--link", link, "--addr", stackV4.String(),
			"--mac", net.HardwareAddr(stackMAC).String(), "--rtp-ports", ports, "--listen-ng", relayNG.String(),
			"--timeout", "0", "--silent-timeout", "0", "--max-calls", strconv.Itoa(relayMaxCalls), "--log-level", "warn")
		if env.relay, err = ns.Start(args...); err != nil {
			return err
		}
		env.clean.Add(func() error { env.relay.Stop(0); return nil })
		env.makeCalls = func(gen, n int) ([]genLeg, error) { return ngCalls(ns, gen, n) }
		env.dropCalls = func(gen, n int) error { return ngDelete(ns, gen, n) }
		return waitNG(ns, env.relay)
	}
	switch path {
	case PathWire:
		// The relay's namespace routes the generator's datagrams back to
		// it: the legs send to each other's socket, through it.
		// The generator's namespace takes them although their source is
		// its own address (accept_local).
		for _, set := range []struct {
			ns     netns.Namespace
			key, v string
		}{
			{relayNS, "net.ipv4.ip_forward", "1"},
			{relayNS, "net.ipv4.conf.all.send_redirects", "0"},
			{relayNS, "net.ipv4.conf." + relayEnd + ".send_redirects", "0"},
			{genNS, "net.ipv4.conf.all.accept_local", "1"},
			{genNS, "net.ipv4.conf." + env.genIface + ".accept_local", "1"},
			{genNS, "net.ipv4.conf.all.rp_filter", "0"},
			{genNS, "net.ipv4.conf." + env.genIface + ".rp_filter", "0"},
		} {
			if out, err := set.ns.Exec("sysctl", "-q", "-w", set.key+"="+set.v); err != nil {
				return nil, fmt.Errorf("sysctl %s: %w: %s", set.key, err, out)
			}
		}
		env.makeCalls = wireCalls
		env.dropCalls = func(int, int) error { return nil }
	case PathMediastackTap:
		if err := serve(genNS, "tap:"+tapName); err != nil {
			return nil, err
		}
	case PathMediastackRaw:
		if err := serve(relayNS, "raw:"+relayEnd); err != nil {
			return nil, err
		}
	case PathRtpengine:
		dir, err := os.MkdirTemp("", "msr-rtpengine")
		if err != nil {
			return nil, err
		}
		env.clean.Add(func() error { return os.RemoveAll(dir) })
		args := rtpengine.Args(rtpengine.Options{NG: relayNG, Interfaces: []netip.Addr{stackV4.Addr()},
			PortMin: relayFirstPort, PortMax: relayLastPort, PidFile: filepath.Join(dir, "rtpengine.pid")})
		// Calls that stay silent (the idle row) are not timed out.
		// Every call has a socket per port: its descriptor limit is
		// raised to what relayMaxCalls calls take, or as far as it goes
		// (rtpengineNoFile).
		args = append(args, "--timeout=86400", "--silent-timeout=86400", "--final-timeout=0",
			"--max-sessions="+strconv.Itoa(relayMaxCalls))
		nofile, _ := relayNoFile()
		if env.relay, err = relayNS.Start(append([]string{"sh", "-c", `ulimit -n "$0" && exec "$@"`, strconv.Itoa(nofile)}, args...)...); err != nil {
			return nil, err
		}
		env.clean.Add(func() error { env.relay.Stop(0); return nil })
		env.makeCalls = func(gen, n int) ([]genLeg, error) { return ngCalls(relayNS, gen, n) }
		env.dropCalls = func(gen, n int) error { return ngDelete(relayNS, gen, n) }
		if err := waitNG(relayNS, env.relay); err != nil {
			return nil, err
		}
	case PathGoKernel, PathGonetTap:
		ns, kind := relayNS, "kernel"
		if path == PathGonetTap {
			ns, kind = genNS, "tap:"+tapName
		}
		h, err := startHelper(ns, helper, HelperRelay, kind)
		if err != nil {
			return nil, err
		}
		env.clean.Add(h.stop)
		env.relay = h.proc
		env.makeCalls = func(_, n int) ([]genLeg, error) { return helperCalls(h, n) }
		env.dropCalls = func(int, int) error { _, err := helperCalls(h, 0); return err }
	default:
		return nil, fmt.Errorf("no relay path %s", path)
	}
	if env.genIface == tapName {
		// The relay made the TAP in the generator's namespace: give the
		// kernel's end the generator's addresses.
		if err := netns.WaitFor(netns.StateTimeout, "the relay's TAP "+tapName, func() error {
			if out, err := genNS.IP("link", "show", "dev", tapName); err != nil {
				return fmt.Errorf("%s: %w", strings.TrimSpace(out), netns.ErrNotYet)
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("%w: %s", err, env.relay.Output())
		}
		if err := genNS.Address(tapName, net.HardwareAddr(peerMAC), peerV4); err != nil {
			return nil, err
		}
		if _, err := genNS.IP("link", "set", "dev", tapName, "txqueuelen", "4096"); err != nil {
			return nil, err
		}
	}
	if env.gen, err = startHelper(genNS, helper, HelperGenerator); err != nil {
		return nil, err
	}
	env.clean.Add(env.gen.stop)
	made := genNS.Name
	if relayNS.Name != "" {
		made += " and " + relayNS.Name + " with veth " + env.genIface + " and " + relayEnd
	} else {
		made += " with TAP " + tapName
	}
	cfg.logf("relay: made namespaces %s for %s", made, path)
	return env, nil
}

func (env *relayEnv) close() error { return env.clean.Run() }

// logTail is the end of what the relay process wrote.
func (env *relayEnv) logTail() string {
	if env.relay == nil {
		return ""
	}
	out := env.relay.Output()
	return out[max(0, len(out)-1500):]
}

// noIPv6 turns IPv6 off on the links made in ns from now on. The relay
// suite is IPv4; with IPv6 on, the kernel's end of a new TAP or veth sends
// router solicitations and MLD reports for seconds after it comes up, which
// wake the relays reading raw frames: the idle row, run alone (--rows),
// measured those, not its silent calls.
func noIPv6(ns netns.Namespace) error {
	for _, key := range []string{"net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"} {
		if out, err := ns.Exec("sysctl", "-q", "-w", key+"=1"); err != nil {
			return fmt.Errorf("sysctl %s: %w: %s", key, err, out)
		}
	}
	return nil
}

// relayFilesFor is the descriptors relay p takes for calls calls: the
// relays on kernel sockets have a socket per port (rtpengine 3 per call:
// with both phones offering rtcp-mux (ngCalls) it keeps an RTCP port on the
// offer's side only; go-kernel 2), and a few of their own.
func relayFilesFor(p Path, calls int) int {
	switch p {
	case PathRtpengine:
		return 3*calls + 256
	case PathGoKernel:
		return 2*calls + 256
	}
	return 0
}

// relayNoFile is the descriptor limit the relays on kernel sockets run
// with: what relayMaxCalls calls take, when this process may raise its
// hard limit that far (CAP_SYS_RESOURCE, which a container's root may
// lack), else the hard limit it has; why says which.
func relayNoFile() (n int, why string) {
	want := relayFilesFor(PathRtpengine, relayMaxCalls)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return want, "getrlimit: " + err.Error()
	}
	if lim.Max >= uint64(want) {
		return want, "RLIMIT_NOFILE"
	}
	if hasCapability(unix.CAP_SYS_RESOURCE) {
		return want, "RLIMIT_NOFILE raised with CAP_SYS_RESOURCE"
	}
	return int(lim.Max), fmt.Sprintf("the hard RLIMIT_NOFILE; without CAP_SYS_RESOURCE it cannot be raised to %d", want)
}

// hasCapability says whether this process has capability c in effect.
func hasCapability(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<c) != 0
		}
	}
	return false
}

// waitNG waits until the ng port in ns answers a ping.
func waitNG(ns netns.Namespace, proc *netns.Process) error {
	return netns.WaitFor(netns.StateTimeout, "the relay's ng port answering ping", func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("the relay exited (%v): %s", proc.Err(), proc.Output())
		default:
		}
		var d bencode.Dict
		err := ns.Enter(func() error {
			c, err := rtpengine.Dial(relayNG, "ping")
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetTimeout(200 * time.Millisecond)
			d, err = c.Do(bencode.Dict{"command": "ping"})
			return err
		})
		if err != nil || d["result"] != "pong" {
			return fmt.Errorf("%v %v: %w", d, err, netns.ErrNotYet)
		}
		return nil
	})
}

// callLegs are call i's two generator sockets.
func callLegs(i int) (a, b netip.AddrPort) {
	p := relayFirstPeerPort + 4*i
	return netip.AddrPortFrom(peerV4.Addr(), uint16(p)), netip.AddrPortFrom(peerV4.Addr(), uint16(p+2))
}

// ngCalls sets up n calls over the ng port in ns, as a SIP proxy does
// (offer with the caller's SDP, answer with the callee's), from a few
// client sockets at once, and returns their legs: each phone sends to the
// address the other's SDP was rewritten to. Both phones offer RTCP on the
// RTP port (a=rtcp-mux, accepted): a port less per call, which lets
// rtpengine, a socket per port, hold 5,000 calls within a container's
// 20,000 descriptors (relayNoFile).
func ngCalls(ns netns.Namespace, gen, n int) ([]genLeg, error) {
	legs := make([]genLeg, 2*n)
	err := ngEach(ns, "call", gen, n, func(c *rtpengine.Conn, i int) error {
		a, b := callLegs(i)
		common := bencode.Dict{"call-id": ngCallID(gen, i), "from-tag": "a", "replace": bencode.List{"origin", "session-connection"},
			"ICE": "remove", "rtcp-mux": bencode.List{"accept"}}
		offer := bencode.Dict{"command": "offer", "sdp": muxSDP(a, uint64(2*i+1))}
		answer := bencode.Dict{"command": "answer", "to-tag": "b", "sdp": muxSDP(b, uint64(2*i+2))}
		var dst [2]netip.AddrPort
		for j, req := range []bencode.Dict{offer, answer} {
			for k, v := range common {
				req[k] = v
			}
			d, err := c.Do(req)
			if err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
			sdp, _ := d["sdp"].(string)
			m, err := sipua.ParseMedia([]byte(sdp))
			if err != nil {
				return fmt.Errorf("call %d: %s: %w", i, req["command"], err)
			}
			dst[j] = m[0].RTP
		}
		// The offer's answer is where the callee sends, the answer's
		// where the caller does.
		legs[2*i] = genLeg{Src: a, Dst: dst[1]}
		legs[2*i+1] = genLeg{Src: b, Dst: dst[0]}
		return nil
	})
	return legs, err
}

// muxSDP is a phone's audio SDP offering RTCP on its RTP port.
func muxSDP(rtp netip.AddrPort, sessionID uint64) string {
	return string(sipua.AudioSDP(rtp, sessionID)) + "a=rtcp-mux\r\n"
}

// ngDelete ends the n calls of generation gen.
func ngDelete(ns netns.Namespace, gen, n int) error {
	return ngEach(ns, "delete", gen, n, func(c *rtpengine.Conn, i int) error {
		_, err := c.Do(bencode.Dict{"command": "delete", "call-id": ngCallID(gen, i), "from-tag": "a"})
		return err
	})
}

func ngCallID(gen, i int) string { return fmt.Sprintf("bench-%d-%d", gen, i) }

// ngEach runs do for calls 0 to n-1 from a few ng client sockets in ns at
// once; verb (what do asks) makes the sockets' cookies its own.
func ngEach(ns netns.Namespace, verb string, gen, n int, do func(c *rtpengine.Conn, i int) error) error {
	const workers = 4
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = ns.Enter(func() error {
				// Cookies unique over the run: an ng server answers a
				// cookie it has seen from its cache (a retransmission).
				// A delete's cookies must differ from its call's offer's:
				// a reused cookie gets the cached offer reply and the call
				// stays (which left thousands of calls behind, and the idle
				// row short of ports and calls).
				c, err := rtpengine.Dial(relayNG, fmt.Sprintf("bench%s%d_%d_%d", verb, gen, n, w))
				if err != nil {
					return err
				}
				defer c.Close()
				for i := w; i < n; i += workers {
					if err := do(c, i); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// helperCalls asks a relay helper for n fresh calls; its ports are call
// i's relayFirstPort+4i and +4i+2.
func helperCalls(h *helperProc, n int) ([]genLeg, error) {
	if _, err := fmt.Fprintf(h.stdin, "calls %d\n", n); err != nil {
		return nil, err
	}
	line, err := h.readLine(time.Minute)
	if err != nil {
		return nil, err
	}
	if line != "ready" {
		return nil, fmt.Errorf("the relay said %q", line)
	}
	var legs []genLeg
	for i := range n {
		a, b := callLegs(i)
		p := uint16(relayFirstPort + 4*i)
		legs = append(legs, genLeg{Src: a, Dst: netip.AddrPortFrom(stackV4.Addr(), p)}, genLeg{Src: b, Dst: netip.AddrPortFrom(stackV4.Addr(), p+2)})
	}
	return legs, nil
}

// wireCalls are calls through no relay: each leg sends straight to the
// other's socket, through the relay's namespace as a router.
func wireCalls(_, n int) ([]genLeg, error) {
	var legs []genLeg
	for i := range n {
		a, b := callLegs(i)
		legs = append(legs, genLeg{Src: a, Dst: b}, genLeg{Src: b, Dst: a})
	}
	return legs, nil
}

// setCalls ends the relay's calls and sets up n fresh ones: every
// workload's calls are its own, so what one did to its calls (rtpengine's
// flood protection, say) does not carry over to the next.
func (env *relayEnv) setCalls(n int) error {
	if env.calls > 0 {
		if err := env.dropCalls(env.callGen, env.calls); err != nil {
			return fmt.Errorf("ending %d calls: %w", env.calls, err)
		}
		env.calls, env.legs, env.legsFor = 0, nil, nil
	}
	if n == 0 {
		return nil
	}
	env.callGen++
	start := time.Now()
	legs, err := env.makeCalls(env.callGen, n)
	if err != nil {
		return err
	}
	env.calls, env.legs = n, legs
	env.cfg.logf("relay: %s: %d calls set up in %v", env.path, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// giveLegs hands the generator b's calls' legs, unless it has them.
func (env *relayEnv) giveLegs(b *relayBench) error {
	if env.legsFor == b {
		return nil
	}
	req := env.request(0, 0, 0)
	req.Legs = env.legs
	if _, err := env.gen.step(req); err != nil {
		return err
	}
	env.legsFor = b
	return nil
}

func (env *relayEnv) request(rate float64, ms, drainMs int) genRequest {
	return genRequest{
		Iface:  env.genIface,
		SrcMAC: net.HardwareAddr(peerMAC).String(),
		DstMAC: net.HardwareAddr(stackMAC).String(),
		Relay:  true, Rate: rate, DurationMs: ms, DrainMs: drainMs, Size: 172,
	}
}

// procCPU is a process's CPU time and context switches, all threads.
type procCPU struct {
	ns       uint64
	switches uint64
}

// readProcCPU reads pid's threads' schedstat (time on the CPU, ns) and
// status (voluntary and involuntary context switches). A thread that
// exited between two readings takes its share with it: the relays' threads
// live as long as they do.
func readProcCPU(pid int) (procCPU, error) {
	var c procCPU
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return c, err
	}
	for _, t := range tasks {
		if b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat")); err == nil {
			f := strings.Fields(string(b))
			if len(f) > 0 {
				v, _ := strconv.ParseUint(f[0], 10, 64)
				c.ns += v
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, t.Name(), "status")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
					n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					c.switches += n
				}
			}
		}
	}
	return c, nil
}

// relayBench is one relay's side of a relay workload.
type relayBench struct {
	env   *relayEnv
	calls int
	round func(b *relayBench, ctx context.Context) (Result, error)
	prev  float64 // the previous round's loss-free rate
	// silent: the calls are set up for the relay only (the idle row);
	// the generator keeps the legs it has.
	silent bool
}

func (b *relayBench) Close() error { return b.env.setCalls(0) }

// Round implements Bench.
func (b *relayBench) Round(ctx context.Context) (Result, error) {
	if !b.silent {
		if err := b.env.giveLegs(b); err != nil {
			return Result{}, err
		}
	}
	return b.round(b, ctx)
}

// measured is one step with the relay's and the generator's CPU around it.
type measured struct {
	rep          genReply
	relay, gen   procCPU
	wall         time.Duration
	relayPresent bool
}

// step runs one generator step, reading the processes' CPU around it.
func (b *relayBench) step(rate float64, ms, drainMs int) (measured, error) {
	var m measured
	var relay0, gen0 procCPU
	var err error
	if b.env.relay != nil {
		if relay0, err = readProcCPU(b.env.relay.Pid()); err != nil {
			return m, err
		}
		m.relayPresent = true
	}
	if gen0, err = readProcCPU(b.env.gen.proc.Pid()); err != nil {
		return m, err
	}
	start := time.Now()
	if rate > 0 {
		m.rep, err = b.env.gen.step(b.env.request(rate, ms, drainMs))
		if err != nil {
			return m, err
		}
	} else {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	m.wall = time.Since(start)
	if b.env.relay != nil {
		r1, err := readProcCPU(b.env.relay.Pid())
		if err != nil {
			return m, err
		}
		m.relay = procCPU{r1.ns - relay0.ns, r1.switches - relay0.switches}
	}
	g1, err := readProcCPU(b.env.gen.proc.Pid())
	if err != nil {
		return m, err
	}
	m.gen = procCPU{g1.ns - gen0.ns, g1.switches - gen0.switches}
	return m, nil
}

// result turns a step into a row's figures.
func (m measured) result() Result {
	var r Result
	if n := float64(m.rep.Received); n > 0 {
		r.RelayCPUMicrosPerPacket = float64(m.relay.ns) / 1e3 / n
		r.TotalCPUMicrosPerPacket = float64(m.relay.ns+m.gen.ns) / 1e3 / n
		r.CtxSwitchesPerPacket = float64(m.relay.switches) / n
	}
	if m.wall > 0 {
		r.RelayCPUPercent = 100 * float64(m.relay.ns) / float64(m.wall.Nanoseconds())
	}
	r.LatencyP50Micros, r.LatencyP99Micros, r.LatencyP999Micros = m.rep.P50Micros, m.rep.P99Micros, m.rep.P999Micros
	r.Loss = m.rep.Loss()
	r.GeneratorLimited = m.rep.Limited
	return r
}

// warmUp sends at a low rate until every call gets through: neighbours
// resolved, the relays' peers learnt.
func (b *relayBench) warmUp(ctx context.Context) error {
	var last genReply
	// A few datagrams for every leg in a step.
	rate := max(1000, min(10000, float64(40*b.calls)))
	ms := max(300, int(3*float64(2*b.calls)/rate*1000))
	for range 30 {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := b.step(rate, ms, 50)
		if err != nil {
			return err
		}
		if m.rep.Loss() < 0.01 && m.rep.Silent == 0 {
			return nil
		}
		last = m.rep
	}
	// The relay does not relay every call: measure what it does, and say
	// so.
	b.env.cfg.logf("relay: %s: %d calls: still %d of %d datagrams relayed, %d calls silent on a leg, after warming up; measuring anyway; the relay's log ends:\n%s",
		b.env.path, b.calls, last.Received, last.Sent, last.Silent, b.env.logTail())
	return nil
}

// fixedRate is a fixed-rate row: one step at rate.
func (b *relayBench) fixedRate(ctx context.Context, rate float64, ms int) (Result, error) {
	if err := b.warmUp(ctx); err != nil {
		return Result{}, err
	}
	m, err := b.step(rate, ms, 100)
	if err != nil {
		return Result{}, err
	}
	res := m.result()
	b.env.cfg.logf("  %-20s %-15s %s pkt/s asked, %s sent, loss %.3f%%, relay %.1f µs/pkt, +gen %.1f µs/pkt, one-way p50 %.0f µs",
		relayName("", rate, b.calls), b.env.path, si(rate), si(m.rep.SendRate), 100*m.rep.Loss(),
		res.RelayCPUMicrosPerPacket, res.TotalCPUMicrosPerPacket, m.rep.P50Micros)
	return res, nil
}

// search finds the highest rate relayed with under lossFree loss and a
// one-way p99 under relayMaxP99Micros.
func (b *relayBench) search(ctx context.Context, sp searchParams) (Result, error) {
	if err := b.warmUp(ctx); err != nil {
		return Result{}, err
	}
	var last measured
	good, limited, err := sp.find(ctx, b.prev, func(rate float64) (stepOutcome, error) {
		m, err := b.step(rate, sp.stepMs, sp.drainMs)
		if err != nil {
			return stepOutcome{}, err
		}
		last = m
		ok := m.rep.Loss() < lossFree && m.rep.P99Micros <= relayMaxP99Micros
		b.env.cfg.logf("  %-20s %-15s %8s pkt/s asked, %8s sent, loss %.3f%%, p99 %.0f µs%s", relayName("search", 0, b.calls), b.env.path,
			si(rate), si(m.rep.SendRate), 100*m.rep.Loss(), m.rep.P99Micros, map[bool]string{true: " (generator-limited)"}[m.rep.Limited])
		return stepOutcome{ok: ok, limited: m.rep.Limited, rcvbufDrops: m.rep.RcvbufErrors > 0, sendRate: m.rep.SendRate}, nil
	})
	if err != nil {
		return Result{}, err
	}
	res := last.result()
	if good > 0 {
		b.prev = good
	}
	res.PacketsPerSecond, res.LossFreeRateTested, res.GeneratorLimited = good, good > 0, limited
	return res, nil
}

// burst overloads the relay, then counts the calls that stayed dead and
// whether the loss went back to none.
func (b *relayBench) burst(ctx context.Context, plan relayPlan) (Result, error) {
	if err := b.warmUp(ctx); err != nil {
		return Result{}, err
	}
	const rate = 10000
	burst, err := b.step(relayBurstRate, plan.burstMs, 0)
	if err != nil {
		return Result{}, err
	}
	after, err := b.step(rate, plan.afterMs, 0)
	if err != nil {
		return Result{}, err
	}
	later, err := b.step(rate, plan.afterMs, 100)
	if err != nil {
		return Result{}, err
	}
	res := burst.result()
	// The delay in an overload is the queue's: not a figure of the row.
	res.LatencyP50Micros, res.LatencyP99Micros, res.LatencyP999Micros = 0, 0, 0
	res.DeadCalls = float64(after.rep.Silent)
	res.RecoveryLoss = later.rep.Loss()
	b.env.cfg.logf("  %-20s %-15s burst %s pkt/s asked, %s sent, loss %.1f%%; then %d dead calls, loss %.3f%% and %.3f%%",
		relayName("burst", 0, b.calls), b.env.path, si(relayBurstRate), si(burst.rep.SendRate), 100*burst.rep.Loss(),
		after.rep.Silent, 100*after.rep.Loss(), 100*later.rep.Loss())
	return res, nil
}

// idle measures the relay's CPU with its calls set up and silent.
func (b *relayBench) idle(ctx context.Context, ms int) (Result, error) {
	// The calls were made by Round; let what their setting up started
	// settle before measuring.
	time.Sleep(200 * time.Millisecond)
	m, err := b.step(0, ms, 0)
	if err != nil {
		return Result{}, err
	}
	var res Result
	res.RelayCPUPercent = 100 * float64(m.relay.ns) / float64(m.wall.Nanoseconds())
	b.env.cfg.logf("  %-20s %-15s relay CPU %.3f%% over %v", relayName("idle", 0, b.calls), b.env.path, res.RelayCPUPercent, m.wall.Round(time.Millisecond))
	return res, nil
}
