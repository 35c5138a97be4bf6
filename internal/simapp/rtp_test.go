package simapp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/simapp"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// twoStacks puts two stacks, 198.51.100.1 and .2, on a simulated wire with
// a 1 ms delay and no loss.
func twoStacks(t *testing.T) (clock *sim.Clock, network *sim.Network, a, b *stack.Stack) {
	t.Helper()
	clock = sim.NewClock()
	network, err := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	newHost := func(mac tcpip.LinkAddress, addr string) *stack.Stack {
		ep, err := network.NewEndpoint(sim.EndpointOptions{MAC: mac, Impairments: sim.Impairments{Delay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Name: "sim0", Link: ep, Addrs: []string{addr}}}, Clock: clock, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		clock.AddSettler(s.Settle)
		return s
	}
	a = newHost("\x02\x00\x5e\x00\x00\x01", "198.51.100.1/24")
	b = newHost("\x02\x00\x5e\x00\x00\x02", "198.51.100.2/24")
	return clock, network, a, b
}

// Two streams for two seconds on a lossless wire: every packet arrives, in
// order, and each stream's sender report (one per second, the first after
// a second) is answered; everything but the first packet to each new peer
// goes fast both ways.
func TestRTPStreamsOnALosslessWire(t *testing.T) {
	clock, network, a, b := twoStacks(t)
	media, err := simapp.NewRTPStreams(a, b, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	const sending, drain = 2 * time.Second, 100 * time.Millisecond
	for now := time.Duration(0); now < sending+drain; now = clock.Elapsed() {
		if err := media.Step(now, now < sending); err != nil {
			t.Fatalf("at %v: %v", now, err)
		}
		clock.Settle()
		network.Run(time.Millisecond)
	}
	type counts struct{ Streams, Sent, Received, OutOfOrder, SenderReports, ReceiverReports uint64 }
	want := counts{Streams: 2, Sent: 200, Received: 200, SenderReports: 2, ReceiverReports: 2}
	got := counts{uint64(media.Streams()), media.Sent, media.Received, media.OutOfOrder, media.SenderReports, media.ReceiverReports}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	sa, sb := media.Stats()
	// A sends 200 RTP packets and 2 sender reports, B 2 receiver reports.
	// Only A's very first datagram goes through netstack, which resolves
	// B: the first datagram from each other port finds netstack knowing
	// the peer already (B learnt A from A's ARP request) and goes fast too
	// (issue 12).
	if got := sa.Send.Fast + sb.Send.Fast; got != 203 {
		t.Errorf("sent %d fast, want 203\nA %v\nB %v", got, sa.Send, sb.Send)
	}
	if got := sa.Send.Fallback(udpfast.ReasonNoEntry); got != 1 || sa.Send.FallbackTotal() != 1 {
		t.Errorf("A sent %v through netstack, want no-entry 1", sa.Send.Fallbacks)
	}
	if got := sb.Send.FallbackTotal(); got != 0 {
		t.Errorf("B sent %v through netstack, want none", sb.Send.Fallbacks)
	}
	if got := sa.Receive.FastDelivered + sb.Receive.FastDelivered; got != 204 {
		t.Errorf("received %d fast, want all 204", got)
	}
}

// NewRTPStreams fails cleanly (nothing left open) when the streams do not
// fit the port range.
func TestRTPStreamsTooMany(t *testing.T) {
	_, _, a, b := twoStacks(t)
	if _, err := simapp.NewRTPStreams(a, b, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), 51); err == nil {
		t.Fatal("51 streams on 50 pairs: no error")
	}
	media, err := simapp.NewRTPStreams(a, b, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), 50)
	if err != nil {
		t.Fatalf("50 streams after a failed attempt: %v", err)
	}
	media.Close()
}
