package relay_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/relay"
)

// TestIdleRelaysWakeNothing: calls that carried media and then went on
// hold cost no wake-up while silent. On the simulated clock, the timer
// callbacks of the whole LAN (netstack's, the fast paths' address and ARP
// refreshes, the relay service's timeouts) over five silent minutes are
// counted with 2 relays and with 250 relays on the relay host: none run,
// so nothing polls, per relay, per port or at all.
func TestIdleRelaysWakeNothing(t *testing.T) {
	few, many := idleWakeups(t, 2), idleWakeups(t, 250)
	if few != 0 || many != 0 {
		t.Errorf("timer callbacks over 5 silent minutes: %d with 2 relays, %d with 250, want none", few, many)
	}
}

// idleWakeups makes n relays between a caller on T1 and a callee on T2,
// relays a datagram each way on each, puts every call on hold, lets the
// one-off work of silence pass (ARP entries aging, the first timeout
// check) and returns how many timer callbacks the LAN's clock runs in the
// five minutes after.
func idleWakeups(t *testing.T, n int) uint64 {
	t.Helper()
	sl := simlan.New(t, simlan.Options{Seed: 1, Impairments: sim.Impairments{Delay: time.Millisecond}})
	host := func(h byte, hi uint16) *mediaport.Manager {
		return sl.AddHost(simlan.HostOptions{N: h, Seed: int64(h), Media: &mediaport.Options{PortMin: 20000, PortMax: hi}}).Media
	}
	r := host(2, 21999)
	t1, t2 := host(1, 20099), host(3, 20099)
	sl.Run(time.Second)
	s, err := relay.New(relay.Options{Manager: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	a, b := simlan.Open(t, t1, caller.Port()), simlan.Open(t, t2, callee.Port())
	relayAddr := netip.MustParseAddr("198.51.100.2")
	var relays []*relay.Relay
	for range n {
		rl, err := s.Create(relay.Spec{Peers: [2]netip.AddrPort{caller, callee}})
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, rl)
		ports := rl.Info().Ports
		send(t, a, netip.AddrPortFrom(relayAddr, ports[0]), "a")
		send(t, b, netip.AddrPortFrom(relayAddr, ports[1]), "b")
	}
	sl.Run(100 * time.Millisecond)
	for _, rl := range relays {
		if info := rl.Info(); info.Sides[0].SentPackets != 1 || info.Sides[1].SentPackets != 1 {
			t.Fatalf("relay %s sent %d and %d datagrams, want 1 each way", rl.ID(), info.Sides[0].SentPackets, info.Sides[1].SentPackets)
		}
		for i := range 2 {
			if err := rl.SetSilent(i, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	simlan.Drain(t, a)
	simlan.Drain(t, b)
	sl.Run(2 * time.Minute)
	before := sl.Clock.Fired()
	sl.Run(5 * time.Minute)
	if got := len(s.List()); got != n {
		t.Fatalf("%d relays after 7 silent minutes, want %d (on hold, SilentTimeout is an hour)", got, n)
	}
	return sl.Clock.Fired() - before
}
