package policyarp_test

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The table covers ports base to base+nports-1; the tests resolve on rtp.
const (
	base   = 20000
	nports = 100
	rtp    = base + 4
)

// The LAN: A (the stack under test, gateway R), B a peer on-link, R a
// router; B2 is the card B moves to.
const hostA, hostB, hostR, cardB2 = 1, 2, 254, 102

var (
	macA, macB, macB2, macR = frames.MAC(hostA), frames.MAC(hostB), frames.MAC(cardB2), frames.MAC(hostR)
	a4, b4, r4, remote4     = addr(frames.V4(hostA)), addr(frames.V4(hostB)), addr(frames.V4(hostR)), addr(frames.Remote4)
	a6, b6                  = addr(frames.V6(hostA)), addr(frames.V6(hostB))
)

func addr(a netip.Addr) tcpip.Address { return stack.AddrFrom(a) }

func newLAN(t *testing.T) *simlan.LAN {
	return simlan.New(t, simlan.Options{Seed: 1, Impairments: sim.Impairments{Delay: time.Millisecond}, Record: true},
		simlan.HostOptions{N: hostA, Gateways: []string{frames.V4(hostR).String()}},
		simlan.HostOptions{N: hostB},
		simlan.HostOptions{N: hostR, Addrs: []string{frames.Prefix(frames.V4(hostR)).String()}},
	)
}

func newTable(t *testing.T, lan *simlan.LAN) *policyarp.Table {
	t.Helper()
	a := lan.Hosts[0].Stack
	tab, err := policyarp.New(policyarp.Options{Stack: a.Netstack(), NIC: a.NICID(0), BasePort: base, Ports: nports})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tab.Close)
	return tab
}

func mustResolve(t *testing.T, tab *policyarp.Table, port uint16, local, dst tcpip.Address) *policyarp.Entry {
	t.Helper()
	e, err := tab.Resolve(port, local, dst)
	if err != nil {
		t.Fatalf("Resolve(%d, %s, %s): %v", port, local, dst, err)
	}
	return e
}

// state returns the state of port's entry for B (or 255 when none).
func state(tab *policyarp.Table, port uint16) policyarp.State { return stateFor(tab, port, b4) }

func stateFor(tab *policyarp.Table, port uint16, dst tcpip.Address) policyarp.State {
	if e := tab.Slot(port).Peek(dst); e != nil {
		return e.State
	}
	return 255
}

func TestNewValidatesOptions(t *testing.T) {
	lan := newLAN(t)
	ns := lan.Hosts[0].Stack.Netstack()
	for _, tc := range []struct {
		name string
		opts policyarp.Options
	}{
		{"no stack", policyarp.Options{NIC: 1, BasePort: base, Ports: 1}},
		{"no such NIC", policyarp.Options{Stack: ns, NIC: 9, BasePort: base, Ports: 1}},
		{"empty range", policyarp.Options{Stack: ns, NIC: 1, BasePort: base}},
		{"range past 65535", policyarp.Options{Stack: ns, NIC: 1, BasePort: 65000, Ports: 537}},
		{"port 0", policyarp.Options{Stack: ns, NIC: 1, BasePort: 0, Ports: 10}},
		{"refresh not below aging", policyarp.Options{Stack: ns, NIC: 1, BasePort: base, Ports: 1, Aging: time.Second, Refresh: time.Second}},
		{"negative", policyarp.Options{Stack: ns, NIC: 1, BasePort: base, Ports: 1, Aging: -time.Second}},
	} {
		if tab, err := policyarp.New(tc.opts); err == nil {
			tab.Close()
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	tab, err := policyarp.New(policyarp.Options{Stack: ns, NIC: 1, BasePort: 65436, Ports: 100})
	if err != nil {
		t.Fatalf("range ending at 65535: %v", err)
	}
	defer tab.Close()
	if tab.Aging() != policyarp.DefaultAging || tab.Refresh() != policyarp.DefaultRefresh {
		t.Errorf("defaults: aging %v refresh %v", tab.Aging(), tab.Refresh())
	}
	if tab.Slot(65535) == nil || tab.Slot(65435) != nil {
		t.Error("Slot bounds wrong at the top of the port space")
	}
}

// The MAC comes from netstack's resolution: Resolving at first, Valid with
// the peer's MAC once netstack's ARP/NDP exchange completes, one request on
// the wire, and a second Resolve for the same destination changes nothing.
func TestResolveLearnsFromNetstack(t *testing.T) {
	for _, tc := range []struct {
		name       string
		local, dst tcpip.Address
	}{{"v4", a4, b4}, {"v6", a6, b6}} {
		t.Run(tc.name, func(t *testing.T) {
			lan := newLAN(t)
			tab := newTable(t, lan)
			lan.Run(time.Second) // let IPv6 link-local set-up traffic pass
			lan.Hosts[1].Frames()

			e := mustResolve(t, tab, rtp, tc.local, tc.dst)
			if e.State != policyarp.Resolving || e.NextHop != tc.dst || e.MAC != "" {
				t.Fatalf("first Resolve: %v, want resolving via %s", e, tc.dst)
			}
			if _, ok := tab.Lookup(rtp, tc.dst); ok {
				t.Fatal("Lookup usable before netstack resolved")
			}
			lan.Run(10 * time.Millisecond)
			mac, ok := tab.Lookup(rtp, tc.dst)
			if !ok || mac != macB {
				t.Fatalf("after resolution Lookup = %q, %v; want %q; entry %v", mac, ok, macB, tab.Slot(rtp).Peek(tc.dst))
			}
			if e2 := mustResolve(t, tab, rtp, tc.local, tc.dst); e2 != tab.Slot(rtp).Peek(tc.dst) || e2.State != policyarp.Valid {
				t.Fatalf("second Resolve replaced a valid entry: %v", e2)
			}
			if got := tab.Stats().Resolutions; got != 1 {
				t.Errorf("Resolutions = %d, want 1", got)
			}
			requests := 0
			for _, f := range lan.Hosts[1].Frames() {
				if tc.name == "v4" && frames.IsARPRequest(f, frames.V4(hostB)) {
					requests++
				}
				if tc.name == "v6" && frames.IsNeighborSolicitation(f, frames.V6(hostB)) {
					requests++
				}
			}
			if requests != 1 {
				t.Errorf("peer saw %d resolution requests, want 1", requests)
			}
		})
	}
}

func TestResolveViaGatewayUsesGatewayMAC(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	e := mustResolve(t, tab, rtp, a4, remote4)
	if e.NextHop != r4 {
		t.Fatalf("next hop %s, want the gateway %s", e.NextHop, r4)
	}
	lan.Run(10 * time.Millisecond)
	if mac, ok := tab.Lookup(rtp, remote4); !ok || mac != macR {
		t.Fatalf("Lookup = %q, %v; want the gateway's MAC %q", mac, ok, macR)
	}
}

func TestResolveRejects(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	for _, dst := range []string{"224.0.0.5", "255.255.255.255", "198.51.100.255", "198.51.100.1", "127.0.0.1", "ff02::1", "2001:db8:1::9", "0.0.0.0"} {
		local, to := a4, addr(netip.MustParseAddr(dst))
		if to.Len() == 16 {
			local = a6
		}
		e := mustResolve(t, tab, rtp, local, to)
		if e.State != policyarp.Unsupported {
			t.Errorf("%s: %v, want unsupported", dst, e)
		}
	}
	if _, err := tab.Resolve(base+nports, a4, b4); !errors.Is(err, policyarp.ErrPortRange) {
		t.Errorf("port past the range: err %v", err)
	}
	if _, err := tab.Resolve(rtp, a4, b6); !errors.Is(err, policyarp.ErrAddressFamily) {
		t.Errorf("mixed families: err %v", err)
	}
}

func TestResolutionFailureIsReported(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp, a4, addr(frames.V4(77)))
	lan.Run(5 * time.Second) // 3 probes, 1s apart
	if got := stateFor(tab, rtp, addr(frames.V4(77))); got != policyarp.Failed {
		t.Fatalf("state %v, want failed", got)
	}
	if tab.Stats().Failures != 1 {
		t.Errorf("Failures = %d", tab.Stats().Failures)
	}
	// A new Resolve starts over (netstack sends a new round of requests).
	if e := mustResolve(t, tab, rtp, a4, addr(frames.V4(77))); e.State != policyarp.Resolving {
		t.Fatalf("Resolve after failure: %v", e)
	}
}

// TestIdleTableSleeps: the refresh timer runs while a destination is in
// use and stops once none is: a table whose entries went unused, with any
// number of ports, runs no refresh round (no timer, no walk of its slots)
// until a destination is used again.
func TestIdleTableSleeps(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	lan.Run(time.Minute)
	if got := tab.Stats().RefreshRounds; got != 0 {
		t.Fatalf("%d refresh rounds in a minute with no entry, want 0", got)
	}
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	for range 5 { // a stream: used every 200 ms for a second
		if _, ok := tab.Lookup(rtp, b4); !ok {
			t.Fatal("no usable entry for B")
		}
		lan.Run(200 * time.Millisecond)
	}
	busy := tab.Stats().RefreshRounds
	if busy == 0 {
		t.Fatal("no refresh round while the entry was in use")
	}
	lan.Run(time.Hour)
	idle := tab.Stats().RefreshRounds
	if idle > busy+1 {
		t.Errorf("%d refresh rounds in an idle hour after the stream stopped, want at most 1 (the one that sees the last use)", idle-busy)
	}
	// Used again, it is refreshed again.
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	tab.Lookup(rtp, b4)
	lan.Run(2 * policyarp.DefaultRefresh)
	if got := tab.Stats().RefreshRounds; got == idle {
		t.Errorf("no refresh round after the entry was used again (%d rounds in all)", got)
	}
}

func TestUnusedEntryAges(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	confirmed := tab.Slot(rtp).Peek(b4).Refreshed
	lan.Run(policyarp.DefaultAging - 20*time.Millisecond)
	if got := state(tab, rtp); got != policyarp.Valid {
		t.Fatalf("just before the aging time: %v", got)
	}
	lan.Run(20 * time.Millisecond)
	e := tab.Slot(rtp).Peek(b4)
	if e.State != policyarp.Aged || e.Refreshed != confirmed {
		t.Fatalf("after the aging time: %v (refreshed %v, confirmed %v)", e, e.Refreshed, confirmed)
	}
	if _, ok := tab.Lookup(rtp, b4); ok {
		t.Fatal("aged entry still usable")
	}
	if tab.Stats().Aged != 1 {
		t.Errorf("Aged = %d", tab.Stats().Aged)
	}
	// Re-learning: netstack still knows B, so the new entry is valid at once.
	if e := mustResolve(t, tab, rtp, a4, b4); e.State != policyarp.Valid || e.MAC != macB {
		t.Fatalf("re-learn: %v", e)
	}
}

// An entry in use never ages: the refresh loop re-validates it every
// second, and in doing so drives netstack's NUD (STALE → DELAY → PROBE), so
// netstack keeps confirming the peer with unicast probes although it sends
// none of the stream itself.
func TestRefreshKeepsEntryInUseValid(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	slot := tab.Slot(rtp)
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	lan.Hosts[1].Frames()
	for i := 0; i < 1200; i++ { // 120 s, a datagram every 100 ms
		if e := slot.Load(b4); e.State != policyarp.Valid {
			t.Fatalf("at %v: entry %v", lan.Clock.Elapsed(), e)
		}
		lan.Run(100 * time.Millisecond)
	}
	st := tab.Stats()
	if st.Aged != 0 || st.Refreshes < 110 {
		t.Fatalf("stats %+v: want no aging and a refresh a second", st)
	}
	probes := 0
	for _, f := range lan.Hosts[1].Frames() {
		if frames.IsARPRequest(f, frames.V4(hostB)) && header.Ethernet(f).DestinationAddress() == macB {
			probes++
		}
	}
	if probes == 0 {
		t.Fatal("netstack sent no unicast NUD probe in 120s: the refresh does not drive NUD")
	}
	t.Logf("120s of use: %d refreshes, %d unicast NUD probes, 0 agings", st.Refreshes, probes)
}

func TestNeighborUpdateInvalidates(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	ns := lan.Hosts[0].Stack.Netstack()
	mustResolve(t, tab, rtp, a4, b4)
	mustResolve(t, tab, rtp+1, a4, b4)
	mustResolve(t, tab, rtp+2, a4, remote4) // via R: untouched
	lan.Run(10 * time.Millisecond)

	tab.HandleNeighborUpdate(addr(frames.V4(99)), macB2) // nobody's next hop
	if got := state(tab, rtp); got != policyarp.Valid {
		t.Fatalf("update for an unused address changed the entry: %v", got)
	}

	// Same MAC: nothing changes, in the table or in netstack (issue 12:
	// a host repeating its announcement used to cost a fallback each time).
	tab.HandleNeighborUpdate(b4, macB)
	for port, want := range map[uint16]policyarp.State{rtp: policyarp.Valid, rtp + 1: policyarp.Valid} {
		if got := state(tab, port); got != want {
			t.Errorf("port %d: %v, want %v", port, got, want)
		}
	}
	if got := stateFor(tab, rtp+2, remote4); got != policyarp.Valid {
		t.Errorf("port %d: %v, want valid", rtp+2, got)
	}
	if st := tab.Stats(); st.Invalidations != 0 || st.NeighborFlushes != 0 || st.AnnouncedSame != 1 {
		t.Errorf("stats %+v", st)
	}

	// New MAC: netstack's entry goes too, so resolution starts afresh and
	// learns the MAC from the peer's reply, never from the announcement.
	lan.Hosts[1].Link.SetLinkAddress(macB2)
	tab.HandleNeighborUpdate(b4, macB2)
	for port, want := range map[uint16]policyarp.State{rtp: policyarp.Invalidated, rtp + 1: policyarp.Invalidated} {
		if got := state(tab, port); got != want {
			t.Fatalf("port %d after update with a new MAC: %v, want %v", port, got, want)
		}
	}
	if got := stateFor(tab, rtp+2, remote4); got != policyarp.Valid {
		t.Errorf("port %d (via R): %v, want valid", rtp+2, got)
	}
	if st := tab.Stats(); st.Invalidations != 2 {
		t.Errorf("Invalidations = %d, want 2", st.Invalidations)
	}
	if tab.Stats().NeighborFlushes != 1 {
		t.Fatalf("NeighborFlushes = %d, want 1", tab.Stats().NeighborFlushes)
	}
	nbrs, _ := ns.Neighbors(1, header.IPv4ProtocolNumber)
	for _, n := range nbrs {
		if n.Addr == b4 {
			t.Fatalf("netstack still has %v", n)
		}
	}
	if e := mustResolve(t, tab, rtp, a4, b4); e.State != policyarp.Resolving {
		t.Fatalf("re-resolve: %v", e)
	}
	mustResolve(t, tab, rtp+1, a4, b4)
	lan.Run(10 * time.Millisecond)
	if mac, ok := tab.Lookup(rtp, b4); !ok || mac != macB2 {
		t.Fatalf("after re-resolution %q %v, want %q", mac, ok, macB2)
	}
	// Both entries followed the move: counted per entry, as revealed by
	// the gratuitous ARP.
	if st := tab.Stats(); st.MACChangesBy[policyarp.GratuitousARPChange] != 2 || st.MACChanges != 2 {
		t.Errorf("MAC changes %v (total %d), want 2 by gratuitous-arp", st.MACChangesBy, st.MACChanges)
	}
}

func TestStaticEntries(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp+1, a4, b4)
	lan.Run(10 * time.Millisecond)
	lan.Hosts[1].Frames()
	fixed := frames.MAC(0x77)
	if err := tab.SetStatic(b4, fixed); err != nil {
		t.Fatal(err)
	}
	if e := tab.Slot(rtp + 1).Peek(b4); e.State != policyarp.Static || e.MAC != fixed {
		t.Fatalf("existing entry not made static: %v", e)
	}
	if e := mustResolve(t, tab, rtp, a4, b4); e.State != policyarp.Static || e.MAC != fixed {
		t.Fatalf("new entry: %v", e)
	}
	tab.HandleNeighborUpdate(b4, macB2)
	lan.Run(3 * policyarp.DefaultAging)
	if e := tab.Slot(rtp).Peek(b4); e.State != policyarp.Static || e.MAC != fixed {
		t.Fatalf("static entry moved: %v", e)
	}
	for _, f := range lan.Hosts[1].Frames() {
		if frames.IsARPRequest(f, frames.V4(hostB)) {
			t.Fatal("ARP request for a static neighbour")
		}
	}
	nbrs, _ := lan.Hosts[0].Stack.Netstack().Neighbors(1, header.IPv4ProtocolNumber)
	found := false
	for _, n := range nbrs {
		found = found || (n.Addr == b4 && n.State == tcpipstack.Static && n.LinkAddr == fixed)
	}
	if !found {
		t.Fatal("netstack has no matching static neighbour: the two lanes would disagree")
	}
	if err := tab.RemoveStatic(b4); err != nil {
		t.Fatal(err)
	}
	if got := state(tab, rtp); got != policyarp.Invalidated {
		t.Fatalf("after RemoveStatic: %v", got)
	}
	if err := tab.RemoveStatic(b4); err == nil {
		t.Fatal("second RemoveStatic succeeded")
	}
	if err := tab.SetStatic(b4, "short"); err == nil {
		t.Fatal("SetStatic accepted a bad MAC")
	}
}

func TestSnapshot(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp+1, a4, remote4)
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	type row struct {
		Port         uint16
		Dst, NextHop tcpip.Address
		MAC          tcpip.LinkAddress
		State        policyarp.State
	}
	var got []row
	for _, e := range tab.Snapshot() {
		got = append(got, row{e.Port, e.Dst, e.NextHop, e.MAC, e.State})
	}
	want := []row{
		{rtp, b4, b4, macB, policyarp.Valid},
		{rtp + 1, remote4, r4, macR, policyarp.Valid},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("Snapshot (-want +got):\n%s", d)
	}
}

func TestReadPathAllocatesNothing(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	slot := tab.Slot(rtp)
	if n := testing.AllocsPerRun(1000, func() {
		if e := slot.Load(b4); e == nil || !e.Usable() {
			panic("unusable")
		}
		if _, ok := tab.Lookup(rtp, b4); !ok {
			panic("lookup")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}

func TestCloseStopsTimers(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	tab.Close()
	tab.Close()
	lan.Run(2 * policyarp.DefaultAging)
	if got := state(tab, rtp); got != policyarp.Valid {
		t.Fatalf("closed table still ages: %v", got)
	}
	if _, err := tab.Resolve(rtp+1, a4, b4); !errors.Is(err, policyarp.ErrClosed) {
		t.Fatalf("Resolve after Close: %v", err)
	}
}

// Readers load entries without locks while writers resolve, invalidate,
// age and make entries static; run with -race. A reader never sees a usable
// entry without a MAC or for another port.
func TestConcurrentReadersAndWriters(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(port uint16) {
			defer wg.Done()
			slot := tab.Slot(port)
			for !stop.Load() {
				if e := slot.Load(b4); e != nil && (e.Port != port || (e.Usable() && len(e.MAC) != 6)) {
					bad.Store(e.String())
				}
				tab.Lookup(port, b4)
				_ = tab.Snapshot()
			}
		}(uint16(rtp + r%2))
	}
	for i := 0; i < 200; i++ {
		for p := uint16(rtp); p < rtp+2; p++ {
			if _, err := tab.Resolve(p, a4, b4); err != nil {
				t.Error(err)
			}
		}
		lan.Run(50 * time.Millisecond)
		switch i % 4 {
		case 1:
			tab.HandleNeighborUpdate(b4, macB2)
		case 2:
			_ = tab.SetStatic(b4, macB)
		case 3:
			_ = tab.RemoveStatic(b4)
		}
		lan.Run(3 * time.Second)
	}
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("reader saw an inconsistent entry: %v", v)
	}
}
