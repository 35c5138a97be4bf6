package bench

import (
	"context"
	"fmt"
	"strings"
)

// The real-link suite: a load generator in a network namespace sends UDP
// to a reflector at rates it steps up, and the table gives, for each path,
// the highest rate reflected with under 0.1% loss and the round-trip time
// at a fixed moderate rate:
//
//   - fast: the fast reflector (fastfilter → udpfast) in this process, on a
//     TAP device or an AF_PACKET socket on a veth (Config.Link), the
//     generator on the kernel's end of it;
//   - netstack: the same reflector written on gonet sockets, in the same
//     process on the same link (another port);
//   - kernel: a reflector on Linux's own UDP sockets, batched with
//     recvmmsg/sendmmsg, in a namespace of its own, the generator on the
//     other end of a veth pair.

// Link suite parameters.
const (
	// lossFree is the loss below which a rate counts as reflected.
	lossFree = 0.001
	// latencyRate is the "fixed moderate rate" of the round-trip times.
	latencyRate = 10000
	// Ports of the reflectors under test.
	linkFastPort     = basePort
	linkNetstackPort = 30000
	linkKernelPort   = basePort

	// Every reflector gets the same room to absorb a burst, for it is
	// bursts (the reflector's goroutine or thread off the CPU for a few
	// milliseconds on a shared machine), not the mean rate, that decide
	// where loss starts: at 300k pkt/s a ring of 4,096 fills in 14 ms.
	// linkQueueDatagrams is the fast path's Ring depth; linkSocketBuffer
	// holds as many 1200-byte datagrams in gonet's receive buffer (which
	// counts payload bytes; netstack's default, 212 KiB, holds 180) and
	// more in the kernel reflector's (which counts about 2.3 KiB of
	// buffer per such datagram, doubled from what is asked).
	linkQueueDatagrams = 16384
	linkSocketBuffer   = 32 << 20
)

// linkWorkloads are the datagrams the real-link suite reflects.
var linkWorkloads = []struct {
	fam  family
	size int
}{{familyV4, 172}, {familyV6, 172}, {familyV4, 1200}}

// searchParams are the steps of the rate search. The first round steps up
// from startRate by factor; later rounds from refine × the previous
// round's rate by refineFactor. Then bisections between the last rate
// that passed and the first that did not.
type searchParams struct {
	stepMs, drainMs    int
	startRate, maxRate float64
	factor             float64
	refine             float64
	refineFactor       float64
	bisections         int
	latencyMs          int
}

// stepOutcome is what one step of a rate search found: whether the rate
// passed (under the loss bound, and any other), whether the generator was
// the limit (it could not send as fast, or its own socket dropped:
// rcvbufDrops), and the rate it sent at.
type stepOutcome struct {
	ok, limited, rcvbufDrops bool
	sendRate                 float64
}

// find runs a rate search with step: up from startRate (or near prev, the
// previous round's result) until a step fails, then bisections. A step
// that fails is tried once more (another process on the machine may have
// disturbed it). It returns the highest rate that passed, and whether the
// generator, not the path, was the limit.
func (sp searchParams) find(ctx context.Context, prev float64, step func(rate float64) (stepOutcome, error)) (good float64, limited bool, err error) {
	try := func(rate float64) (bool, error) {
		for attempt := 1; ; attempt++ {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			o, err := step(rate)
			if err != nil {
				return false, err
			}
			switch {
			case o.ok && !o.limited:
				good = max(good, rate)
				return true, nil
			case attempt < 2:
				continue
			case !o.ok:
				if o.limited && o.rcvbufDrops {
					// The generator's own socket lost the replies: the
					// path may do better.
					limited = true
				}
				return false, nil
			default:
				// Passed at what the generator managed to send: the
				// path may do better.
				good = max(good, o.sendRate)
				limited = true
				return false, nil
			}
		}
	}
	start, factor := sp.startRate, sp.factor
	if prev > 0 {
		start, factor = prev*sp.refine, sp.refineFactor
	}
	bad := 0.0
	// Up in steps until a step fails (or the generator is the limit).
	for rate := start; rate <= sp.maxRate; rate *= factor {
		ok, err := try(rate)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			bad = rate
			break
		}
	}
	// Then bisect between the last good and the first bad rate.
	if bad > 0 && !limited {
		lo := good
		if lo == 0 {
			lo = bad / 8
		}
		for range sp.bisections {
			mid := (lo + bad) / 2
			ok, err := try(mid)
			if err != nil {
				return 0, false, err
			}
			if ok {
				lo = mid
			} else {
				bad = mid
			}
		}
	}
	return good, limited, nil
}

func (cfg Config) search() searchParams {
	if cfg.Short {
		return searchParams{stepMs: 100, drainMs: 50, startRate: 5000, maxRate: 20000, factor: 4, refine: 0.5, refineFactor: 4, latencyMs: 100}
	}
	return searchParams{stepMs: 250, drainMs: 80, startRate: 10000, maxRate: 4e6, factor: 1.6,
		refine: 0.6, refineFactor: 1.25, bisections: 3, latencyMs: 500}
}

func linkSuite() Suite {
	return Suite{
		Name:    "link",
		Title:   "Over a real link, the Linux kernel as the peer: UDP reflected to a load generator in a network namespace",
		Enabled: func(cfg Config) bool { return cfg.Link != "" },
		Workloads: func(cfg Config) ([]Workload, func() error, error) {
			return linkSuiteWorkloads(cfg)
		},
		// A round is a whole rate search.
		Rounds: func(cfg Config) int { return cfg.LinkRounds },
		Columns: []Column{
			{"loss-free pkts/s", lossFreeRate},
			{fmt.Sprintf("RTT p50 µs @%s", si(latencyRate)), func(r Result) string { return fmt.Sprintf("%.0f", r.LatencyP50Micros) }},
			{"p99 µs", func(r Result) string { return fmt.Sprintf("%.0f", r.LatencyP99Micros) }},
			{"allocs/pkt", func(r Result) string {
				if r.Path == PathKernel {
					return "-"
				}
				return allocs(r.AllocsPerPacket)
			}},
		},
		Ratios: []RatioSpec{{Metric: MetricPacketRate, Path: PathFast, Against: []Path{PathNetstack, PathKernel}}},
		Note: func(rows []Result) string {
			var limited []string
			for _, r := range rows {
				if r.GeneratorLimited {
					limited = append(limited, r.Workload+" "+string(r.Path))
				}
			}
			sp, short := Config{}.search(), Config{Short: true}.search()
			note := fmt.Sprintf("loss-free: under %.1f%% of a %d ms step's datagrams lost (%d ms with --short); a step that fails is tried once more\n"+
				"(the machine may be shared); rates stepped up ×%.1f from %s, then bisected; later rounds search near the first.\n"+
				"RTT: %s pkt/s for %d ms (%d ms with --short), before the search.\n"+
				"Room for bursts: the fast path's Ring holds %d datagrams; gonet's and the kernel socket's receive buffers are %d MiB.\n"+
				"The fast reflector writes each run of answers to one peer as one UDP train that the kernel cuts into the\n"+
				"datagrams (UDPSegmentation on the TAP or AF_PACKET link: virtio-net UDP GSO); so does the kernel reflector\n"+
				"(UDP_GRO on receive, UDP_SEGMENT on send, recvmmsg/sendmmsg); gonet writes datagram by datagram.",
				lossFree*100, sp.stepMs, short.stepMs, sp.factor, si(sp.startRate), si(latencyRate), sp.latencyMs, short.latencyMs,
				linkQueueDatagrams, linkSocketBuffer>>20)
			if len(limited) > 0 {
				note += "\n≥: the load generator, not the path, was the limit (it could not send faster, or its own socket dropped replies): " + strings.Join(limited, ", ")
			}
			return note
		},
	}
}

// lossFreeRate is a row's loss-free rate, ≥ when the generator was the
// limit.
func lossFreeRate(r Result) string {
	if !r.LossFreeRateTested {
		return "none"
	}
	s := si(r.PacketsPerSecond)
	if r.GeneratorLimited {
		s = "≥" + s
	}
	return s
}

// linkName names a real-link workload.
func linkName(fam family, size int) string {
	return fmt.Sprintf("link/reflect/%s/%d", fam.name, size)
}

func linkSuiteWorkloads(cfg Config) ([]Workload, func() error, error) {
	envs, err := newLinkEnvs(cfg)
	if err != nil {
		return nil, nil, err
	}
	var ws []Workload
	for _, lw := range linkWorkloads {
		if cfg.Short && (lw.fam.name != "v4" || lw.size != 172) {
			continue
		}
		ws = append(ws, Workload{
			Name:  linkName(lw.fam, lw.size),
			Paths: []Path{PathFast, PathNetstack, PathKernel},
			Open: func(ctx context.Context, path Path) (Bench, error) {
				return envs.open(ctx, path, lw.fam, lw.size)
			},
		})
	}
	return ws, envs.close, nil
}
