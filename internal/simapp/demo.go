package simapp

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

// Demo is `mediastack demo`: two stacks on a simulated link with a little
// delay and loss, a TCP transfer from the first to the second, and RTP
// streams both ways over media ports on the fast paths.
type Demo struct {
	Duration time.Duration // simulated time to send for
	Seed     uint64        // every random choice (same seed, same run); not 0
	Loss     float64       // probability that a frame is lost, each way
	Delay    time.Duration // one-way delay (jitter is a tenth of it)
	TCPBytes int           // size of the TCP transfer
	Streams  int           // RTP streams, 1 to 25
	Capture  io.Writer     // if set, every frame as pcap
}

const (
	demoMACA = tcpip.LinkAddress("\x02\x00\x5e\x00\x00\x01")
	demoMACB = tcpip.LinkAddress("\x02\x00\x5e\x00\x00\x02")
)

// Run runs the demo and prints a line per simulated second and a summary
// to out. Everything runs on one goroutine against a simulated clock, so the
// output depends only on cfg.
func (cfg Demo) Run(out io.Writer) error {
	clock := sim.NewClock()
	var pw *pcap.Writer
	if cfg.Capture != nil {
		var err error
		if pw, err = pcap.NewWriter(cfg.Capture, clock, 0); err != nil {
			return err
		}
	}
	network, err := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: cfg.Seed, Capture: pw})
	if err != nil {
		return err
	}
	im := sim.Impairments{Delay: cfg.Delay, Jitter: cfg.Delay / 10, Loss: cfg.Loss, Bandwidth: 100_000_000}
	newHost := func(mac tcpip.LinkAddress, addrs ...string) (*stack.Stack, error) {
		ep, err := network.NewEndpoint(sim.EndpointOptions{MAC: mac, Impairments: im})
		if err != nil {
			return nil, err
		}
		s, err := stack.New(stack.Options{
			NICs:  []stack.NICOptions{{Name: "sim0", Link: ep, Addrs: addrs}},
			Clock: clock,
			Seed:  int64(cfg.Seed),
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

	tcpXfer, err := NewTCPTransfer(a, b, netip.MustParseAddrPort("198.51.100.2:5001"), cfg.TCPBytes, cfg.Seed)
	if err != nil {
		return err
	}
	defer tcpXfer.Close()
	media, err := NewRTPStreams(a, b, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), cfg.Streams)
	if err != nil {
		return err
	}
	defer media.Close()

	fmt.Fprintf(out, "mediastack demo: 2 stacks on a simulated link (delay %v, loss %.2f%%, 100 Mbit/s), seed %d\n",
		cfg.Delay, cfg.Loss*100, cfg.Seed)
	fmt.Fprintf(out, "  %-6s %12s %10s %10s %10s\n", "time", "tcp bytes", "tcp Mbit/s", "rtp sent", "rtp recv")
	const tick = time.Millisecond
	// After the last packet is sent, what is in flight gets this long to
	// arrive, so that the loss counted is the link's.
	const drain = 200 * time.Millisecond
	var lastBytes int
	var tcpDoneAt time.Duration
	for now := time.Duration(0); now < cfg.Duration+drain; {
		tcpXfer.Step()
		if err := media.Step(now, now < cfg.Duration); err != nil {
			return fmt.Errorf("rtp: %w", err)
		}
		clock.Settle()
		network.Run(tick)
		now = clock.Elapsed()
		if tcpDoneAt == 0 && tcpXfer.Done() {
			tcpDoneAt = now
		}
		if now%time.Second == 0 && now <= cfg.Duration {
			got := tcpXfer.Received()
			fmt.Fprintf(out, "  %-6v %12d %10.2f %10d %10d\n", now, got, float64(got-lastBytes)*8/1e6, media.Sent, media.Received)
			lastBytes = got
		}
	}
	st := tcpXfer.Stats()
	ns := &network.Stats
	fmt.Fprintln(out, "summary:")
	fmt.Fprintf(out, "  tcp: %d of %d bytes delivered", tcpXfer.Received(), cfg.TCPBytes)
	if tcpDoneAt > 0 {
		fmt.Fprintf(out, " in %v (%.2f Mbit/s)", tcpDoneAt, float64(cfg.TCPBytes)*8/tcpDoneAt.Seconds()/1e6)
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
func rtpSummary(out io.Writer, media *RTPStreams) {
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
