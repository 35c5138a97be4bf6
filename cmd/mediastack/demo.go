package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/simapp"
	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

type demoConfig struct {
	duration time.Duration
	seed     uint64
	loss     float64
	delay    time.Duration
	tcpBytes int
	streams  int
	pcapFile string
}

func runDemo(args []string, stdout, _ io.Writer) error {
	var cfg demoConfig
	fs := newFlagSet("demo", "demo [--duration D] [--seed N] [--loss P] [--delay D] [--tcp-bytes N] [--rtp-streams N] [--pcap FILE]", stdout)
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "simulated time to run")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed for every random choice (same seed, same run)")
	fs.Float64Var(&cfg.loss, "loss", 0.005, "probability that a frame is lost, each way")
	fs.DurationVar(&cfg.delay, "delay", 10*time.Millisecond, "one-way delay")
	fs.IntVar(&cfg.tcpBytes, "tcp-bytes", 8<<20, "size of the TCP transfer")
	fs.IntVar(&cfg.streams, "rtp-streams", 4, "RTP streams (G.711, 20 ms packets) over the fast paths, 1 to 25")
	fs.StringVar(&cfg.pcapFile, "pcap", "", "write every frame to this pcap file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case cfg.duration <= 0:
		return usageErrorf("--duration must be positive")
	case cfg.loss < 0 || cfg.loss >= 1:
		return usageErrorf("--loss must be in [0, 1)")
	case cfg.delay < 0:
		return usageErrorf("--delay must not be negative")
	case cfg.tcpBytes <= 0:
		return usageErrorf("--tcp-bytes must be positive")
	case cfg.streams < 1 || cfg.streams > 25:
		return usageErrorf("--rtp-streams must be in [1, 25]")
	case cfg.seed == 0:
		return usageErrorf("--seed must not be 0")
	}
	var capture io.Writer
	if cfg.pcapFile != "" {
		f, err := os.Create(cfg.pcapFile)
		if err != nil {
			return err
		}
		defer f.Close()
		capture = f
	}
	return demo(cfg, stdout, capture)
}

const (
	demoMACA = tcpip.LinkAddress("\x02\x00\x5e\x00\x00\x01")
	demoMACB = tcpip.LinkAddress("\x02\x00\x5e\x00\x00\x02")
)

// demo runs two stacks on a simulated network. Everything runs on one
// goroutine against a simulated clock, so the output depends only on cfg.
func demo(cfg demoConfig, out io.Writer, capture io.Writer) error {
	clock := sim.NewClock()
	var pw *pcap.Writer
	if capture != nil {
		var err error
		if pw, err = pcap.NewWriter(capture, clock, 0); err != nil {
			return err
		}
	}
	network, err := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: cfg.seed, Capture: pw})
	if err != nil {
		return err
	}
	im := sim.Impairments{Delay: cfg.delay, Jitter: cfg.delay / 10, Loss: cfg.loss, Bandwidth: 100_000_000}
	newHost := func(mac tcpip.LinkAddress, addrs ...string) (*stack.Stack, error) {
		ep, err := network.NewEndpoint(sim.EndpointOptions{MAC: mac, Impairments: im})
		if err != nil {
			return nil, err
		}
		s, err := stack.New(stack.Options{
			NICs:  []stack.NICOptions{{Name: "sim0", Link: ep, Addrs: addrs}},
			Clock: clock,
			Seed:  int64(cfg.seed),
		})
		if err != nil {
			return nil, err
		}
		clock.AddSettler(s.Settle)
		return s, nil
	}
	a, err := newHost(demoMACA, "198.51.100.1/24", "2001:db8::1/64")
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := newHost(demoMACB, "198.51.100.2/24", "2001:db8::2/64")
	if err != nil {
		return err
	}
	defer b.Close()

	tcpXfer, err := simapp.NewTCPTransfer(a, b, netip.MustParseAddrPort("198.51.100.2:5001"), cfg.tcpBytes, cfg.seed)
	if err != nil {
		return err
	}
	defer tcpXfer.Close()
	media, err := simapp.NewRTPStreams(a, b, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), cfg.streams)
	if err != nil {
		return err
	}
	defer media.Close()

	fmt.Fprintf(out, "mediastack demo: 2 stacks on a simulated link (delay %v, loss %.2f%%, 100 Mbit/s), seed %d\n",
		cfg.delay, cfg.loss*100, cfg.seed)
	fmt.Fprintf(out, "  %-6s %12s %10s %10s %10s\n", "time", "tcp bytes", "tcp Mbit/s", "rtp sent", "rtp recv")
	const tick = time.Millisecond
	// After the last packet is sent, what is in flight gets this long to
	// arrive, so that the loss counted is the link's.
	const drain = 200 * time.Millisecond
	var lastBytes int
	var tcpDoneAt time.Duration
	for now := time.Duration(0); now < cfg.duration+drain; {
		tcpXfer.Step()
		if err := media.Step(now, now < cfg.duration); err != nil {
			return fmt.Errorf("rtp: %w", err)
		}
		clock.Settle()
		network.Run(tick)
		now = clock.Elapsed()
		if tcpDoneAt == 0 && tcpXfer.Done() {
			tcpDoneAt = now
		}
		if now%time.Second == 0 && now <= cfg.duration {
			got := tcpXfer.Received()
			fmt.Fprintf(out, "  %-6v %12d %10.2f %10d %10d\n", now, got, float64(got-lastBytes)*8/1e6, media.Sent, media.Received)
			lastBytes = got
		}
	}
	st := tcpXfer.Stats()
	ns := &network.Stats
	fmt.Fprintln(out, "summary:")
	fmt.Fprintf(out, "  tcp: %d of %d bytes delivered", tcpXfer.Received(), cfg.tcpBytes)
	if tcpDoneAt > 0 {
		fmt.Fprintf(out, " in %v (%.2f Mbit/s)", tcpDoneAt, float64(cfg.tcpBytes)*8/tcpDoneAt.Seconds()/1e6)
	}
	fmt.Fprintf(out, ", %d segments sent, %d retransmitted\n", st.SegmentsSent.Value(), st.SendErrors.Retransmits.Value())
	rtpSummary(out, media)
	fmt.Fprintf(out, "  link: %d frames sent, %d delivered, %d lost\n", ns.Sent.Load(), ns.Delivered.Load(), ns.Lost.Load())
	if err := tcpXfer.Err; err != nil {
		return err
	}
	if tcpDoneAt > 0 {
		if err := tcpXfer.Verify(); err != nil {
			return err
		}
		fmt.Fprintln(out, "  tcp payload verified (sha256 match)")
	}
	return nil
}

// rtpSummary prints the streams' and the fast paths' totals.
func rtpSummary(out io.Writer, media *simapp.RTPStreams) {
	fmt.Fprintf(out, "  rtp: %d streams, %d packets sent, %d received, %d lost, %d out of order; rtcp: %d sender reports, %d receiver reports\n",
		media.Streams(), media.Sent, media.Received, media.Sent-media.Received, media.OutOfOrder, media.SenderReports, media.ReceiverReports)
	sa, sb := media.Stats()
	send := sa.Send.Add(sb.Send)
	detail := ""
	if send.FallbackTotal() > 0 {
		detail = fmt.Sprintf(" (%v)", send.Fallbacks)
	}
	fmt.Fprintf(out, "  fast path: %d datagrams sent fast, %d through netstack%s; %d received fast, %d through netstack\n",
		send.Fast, send.FallbackTotal(), detail,
		sa.Receive.FastDelivered+sb.Receive.FastDelivered, sa.Receive.NetstackDelivered+sb.Receive.NetstackDelivered)
}
