package relay_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/relay"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// lan is a simulated LAN: the relay host R (host 2 of internal/frames) and
// three terminals, T1 (1), T2 (3) and T3 (4), each with a media port
// manager over 20000-20099.
type lan struct {
	*simlan.LAN
	r *mediaport.Manager
	t []*mediaport.Manager // T1, T2, T3
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	sl := simlan.New(t, simlan.Options{Seed: 1, Impairments: sim.Impairments{Delay: time.Millisecond}})
	l := &lan{LAN: sl}
	newHost := func(n byte) *mediaport.Manager {
		return sl.AddHost(simlan.HostOptions{N: n, Seed: int64(n), Media: &mediaport.Options{PortMin: 20000, PortMax: 20099}}).Media
	}
	l.r = newHost(2)
	for _, n := range []byte{1, 3, 4} {
		l.t = append(l.t, newHost(n))
	}
	l.Run(time.Second)
	return l
}

func (l *lan) service(t *testing.T, reflect bool) *relay.Service {
	t.Helper()
	s, err := relay.New(relay.Options{Manager: l.r, Reflect: reflect})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// drain returns the payloads p holds, without blocking.
func drain(t *testing.T, p *mediaport.Port) []string {
	t.Helper()
	return pluck(simlan.Drain(t, p), func(d simlan.Datagram) string { return d.Payload })
}

// from returns the sources of what p holds, without blocking.
func from(t *testing.T, p *mediaport.Port) []string {
	t.Helper()
	return pluck(simlan.Drain(t, p), func(d simlan.Datagram) string { return d.From })
}

func pluck(ds []simlan.Datagram, f func(simlan.Datagram) string) []string {
	var out []string
	for _, d := range ds {
		out = append(out, f(d))
	}
	return out
}

func send(t *testing.T, p *mediaport.Port, to netip.AddrPort, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if _, err := p.WriteToUDPAddrPort([]byte(m), to); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelayLatchesBothSides: T1 talks to R's port A, T2 to R's port B. A
// side learns its peer from the first datagram it receives; until both
// are known, datagrams for the unknown side are dropped and counted; a
// third party's datagrams are dropped. Forwarding after the first
// datagram of each side is all fast.
func TestRelayLatchesBothSides(t *testing.T) {
	l := newLAN(t)
	s := l.service(t, false)
	r, err := s.Create(relay.Spec{Ports: [2]uint16{20000, 20002}})
	if err != nil {
		t.Fatal(err)
	}
	t1, t2, t3 := simlan.Open(t, l.t[0], 20010), simlan.Open(t, l.t[1], 20020), simlan.Open(t, l.t[2], 20030)
	a, b := ap("198.51.100.2:20000"), ap("198.51.100.2:20002")

	send(t, t1, a, "t1 early") // B's peer unknown: dropped
	l.Run(20 * time.Millisecond)
	send(t, t2, b, "t2 hello") // latches B's peer, goes to T1
	l.Run(20 * time.Millisecond)
	for i := range 5 {
		send(t, t2, b, fmt.Sprintf("t2 %d", i))
		send(t, t1, a, fmt.Sprintf("t1 %d", i))
		send(t, t3, a, fmt.Sprintf("t3 %d", i)) // not A's peer: dropped
		l.Run(20 * time.Millisecond)
	}
	if diff := cmp.Diff([]string{"t2 hello", "t2 0", "t2 1", "t2 2", "t2 3", "t2 4"}, drain(t, t1)); diff != "" {
		t.Errorf("T1 received (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"t1 0", "t1 1", "t1 2", "t1 3", "t1 4"}, drain(t, t2)); diff != "" {
		t.Errorf("T2 received (-want +got):\n%s", diff)
	}
	if got := drain(t, t3); len(got) != 0 {
		t.Errorf("T3 received %q", got)
	}
	// The LAN ran 1 s before the relay was made; the last datagrams
	// arrived 1 ms after the last round of sends.
	last := sim.Epoch.Add(time.Second + 6*20*time.Millisecond + time.Millisecond)
	want := relay.Info{
		ID:      "1",
		Ports:   [2]uint16{20000, 20002},
		Peers:   [2]netip.AddrPort{ap("198.51.100.1:20010"), ap("198.51.100.3:20020")},
		Created: sim.Epoch.Add(time.Second),
		Sides: [2]relay.SideInfo{
			{Port: 20000, Peer: ap("198.51.100.1:20010"), State: relay.PeerLearned, LastPacket: last, Counters: relay.Counters{
				ReceivedPackets: 6, ReceivedBytes: 8 + 5*4, SentPackets: 6, SentBytes: 8 + 5*4, ForeignSource: 5}},
			{Port: 20002, Peer: ap("198.51.100.3:20020"), State: relay.PeerLearned, LastPacket: last, Counters: relay.Counters{
				ReceivedPackets: 6, ReceivedBytes: 8 + 5*4, SentPackets: 5, SentBytes: 5 * 4, NoPeer: 1}},
		},
	}
	if diff := cmp.Diff(want, r.Info(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("relay state (-want +got):\n%s", diff)
	}
	// The relay sends to peers that reached it first: netstack learnt their
	// MACs from their ARP requests, so every send, the first of each side
	// too, goes fast (issue 12).
	if st := l.r.Stats().Send; st.Fast != 11 || st.FallbackTotal() != 0 {
		t.Errorf("R's sends: %+v: want 11 fast, none through netstack", st)
	}
	if st := s.Stats(); st.Relays != 1 || st.Relayed.SentPackets != 11 {
		t.Errorf("service stats %+v", st)
	}
}

// TestRelayFixedPeers: with both peers given, what arrives from A's peer
// goes to B's peer at once, over IPv4 on one side and IPv6 on the other.
func TestRelayFixedPeers(t *testing.T) {
	l := newLAN(t)
	s := l.service(t, false)
	_, err := s.Create(relay.Spec{Ports: [2]uint16{20004, 20005}, Peers: [2]netip.AddrPort{ap("198.51.100.1:20010"), ap("[2001:db8::3]:20020")}})
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := simlan.Open(t, l.t[0], 20010), simlan.Open(t, l.t[1], 20020)
	send(t, t1, ap("198.51.100.2:20004"), "from t1")
	send(t, t2, ap("[2001:db8::2]:20005"), "from t2")
	l.Run(50 * time.Millisecond)
	if diff := cmp.Diff([]string{"from t1"}, drain(t, t2)); diff != "" {
		t.Errorf("T2 received (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"from t2"}, drain(t, t1)); diff != "" {
		t.Errorf("T1 received (-want +got):\n%s", diff)
	}
}

// TestReflector: every free port reflects; a relay takes its ports from the
// reflector and gives them back when deleted.
func TestReflector(t *testing.T) {
	l := newLAN(t)
	mine := simlan.Open(t, l.r, 20099) // opened by someone else: not reflected
	s := l.service(t, true)
	if st := s.Stats(); st.Reflecting != 99 {
		t.Fatalf("%d ports reflecting, want 99", st.Reflecting)
	}
	t1 := simlan.Open(t, l.t[0], 20010)
	send(t, t1, ap("198.51.100.2:20007"), "v4")
	send(t, t1, ap("[2001:db8::2]:20007"), "v6")
	send(t, t1, ap("198.51.100.2:20099"), "not reflected")
	l.Run(50 * time.Millisecond)
	if diff := cmp.Diff([]string{"v4", "v6"}, drain(t, t1)); diff != "" {
		t.Errorf("T1 received (-want +got):\n%s", diff)
	}
	if got := drain(t, mine); len(got) != 1 {
		t.Errorf("the port opened before the reflector received %q", got)
	}

	r, err := s.Create(relay.Spec{Ports: [2]uint16{20007, 20008}, Peers: [2]netip.AddrPort{{}, ap("198.51.100.3:20020")}})
	if err != nil {
		t.Fatal(err)
	}
	t2 := simlan.Open(t, l.t[1], 20020)
	send(t, t1, ap("198.51.100.2:20007"), "relayed")
	l.Run(50 * time.Millisecond)
	if got := drain(t, t1); len(got) != 0 {
		t.Errorf("T1 got %q back from a relay port", got)
	}
	if diff := cmp.Diff([]string{"relayed"}, drain(t, t2)); diff != "" {
		t.Errorf("T2 received (-want +got):\n%s", diff)
	}
	if _, err := s.Delete(r.ID()); err != nil {
		t.Fatal(err)
	}
	send(t, t1, ap("198.51.100.2:20007"), "reflected again")
	l.Run(50 * time.Millisecond)
	if diff := cmp.Diff([]string{"reflected again"}, drain(t, t1)); diff != "" {
		t.Errorf("T1 received (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Reflected != 3 || st.Reflecting != 99 || st.Relayed.SentPackets != 1 {
		t.Errorf("service stats %+v", st)
	}
}

func TestCreateRefusesBadRelays(t *testing.T) {
	l := newLAN(t)
	s := l.service(t, false)
	if _, err := s.Create(relay.Spec{Ports: [2]uint16{20000, 20001}}); err != nil {
		t.Fatal(err)
	}
	simlan.Open(t, l.r, 20050)
	for _, tc := range []struct {
		spec relay.Spec
		want error
		text string
	}{
		{relay.Spec{Ports: [2]uint16{20010, 20010}}, relay.ErrInvalid, "both 20010"},
		{relay.Spec{Ports: [2]uint16{20010, 30000}}, relay.ErrRange, "20000-20099: ports[1] is 30000"},
		{relay.Spec{Ports: [2]uint16{20001, 20010}}, relay.ErrInUse, "ports[0] 20001 belongs to relay 1"},
		{relay.Spec{Ports: [2]uint16{20010, 20050}}, relay.ErrInUse, "ports[1] 20050"},
		{relay.Spec{Ports: [2]uint16{20010, 20011}, Peers: [2]netip.AddrPort{ap("224.0.0.1:5000")}}, relay.ErrInvalid, "peers[0] 224.0.0.1:5000 is not a unicast"},
	} {
		_, err := s.Create(tc.spec)
		if !errors.Is(err, tc.want) || err == nil || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Create(%+v): %v, want %v containing %q", tc.spec, err, tc.want, tc.text)
		}
	}
	// A refused relay left its first port free.
	if _, err := s.Create(relay.Spec{Ports: [2]uint16{20010, 20011}}); err != nil {
		t.Errorf("Create after refusals: %v", err)
	}
	if _, err := s.Delete("42"); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("Delete of an unknown relay: %v", err)
	}
}
