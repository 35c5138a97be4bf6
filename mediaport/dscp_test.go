package mediaport_test

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/internal/tcpipaddr"
	"github.com/mediastack/mediastack/mediaport"
)

// TestDSCPBothLanes checks the TOS / traffic class byte of what a port
// sends, as B's link sees it, on the fast lane and through netstack, over
// IPv4 and IPv6: EF by default, then the code point Port.SetDSCP gives.
func TestDSCPBothLanes(t *testing.T) {
	lan := simlan.New(t, simlan.Options{Seed: 1, Record: true}, simlan.HostOptions{N: hostA}, simlan.HostOptions{N: hostB})
	lan.Run(time.Second)
	a, b := lan.Hosts[0], lan.Hosts[1]
	m := simlan.NewManager(t, a.Stack, mediaport.Options{PortMin: 20000, PortMax: 20099, InstallHook: a.SetHook})
	p := simlan.Open(t, m, 20000)

	// sendAll sends three datagrams to each of B's addresses on port, the
	// clock running in between so that the first (through netstack)
	// resolves B for the others (fast), and returns the TOS bytes B saw
	// from the port and how many datagrams each lane sent.
	sendAll := func(port uint16) (tos map[uint8]int, fast, slow uint64) {
		t.Helper()
		before := p.Stats().Send
		b.Frames()
		for _, dst := range []netip.Addr{addrB4, addrB6} {
			for range 3 {
				if _, err := p.WriteToUDPAddrPort([]byte("media"), netip.AddrPortFrom(dst, port)); err != nil {
					t.Fatal(err)
				}
				lan.Run(10 * time.Millisecond)
			}
		}
		tos = map[uint8]int{}
		for _, f := range b.Frames() {
			if d, ok := frames.ParseUDP(f); ok && d.Src.Port() == 20000 {
				tos[d.TOS]++
			}
		}
		after := p.Stats().Send
		return tos, after.Fast - before.Fast, after.FallbackTotal() - before.FallbackTotal()
	}

	tos, fast, slow := sendAll(30000)
	if want := map[uint8]int{mediaport.DefaultDSCP << 2: 6}; !equalCounts(tos, want) || fast == 0 || slow == 0 {
		t.Errorf("default: TOS bytes %v (%d fast, %d through netstack); want %v on both lanes", tos, fast, slow, want)
	}
	if err := p.SetDSCP(34); err != nil { // AF41, interactive video
		t.Fatal(err)
	}
	// Make B unknown again, to netstack and to the fast path's table, so
	// the first datagram to each address goes through netstack once more.
	for _, addr := range []netip.Addr{addrB4, addrB6} {
		proto := ipv4.ProtocolNumber
		if addr.Is6() {
			proto = ipv6.ProtocolNumber
		}
		m.Table().Invalidate(tcpipaddr.From(addr))
		if err := a.Stack.Netstack().RemoveNeighbor(a.Stack.NICID(0), proto, tcpipaddr.From(addr)); err != nil {
			t.Fatalf("removing %v from netstack's neighbours: %v", addr, err)
		}
	}
	tos, fast, slow = sendAll(30002)
	if want := map[uint8]int{34 << 2: 6}; !equalCounts(tos, want) || fast == 0 || slow == 0 {
		t.Errorf("after SetDSCP(34): TOS bytes %v (%d fast, %d through netstack); want %v on both lanes", tos, fast, slow, want)
	}
	if err := p.SetDSCP(64); err == nil {
		t.Error("SetDSCP(64) succeeded; DSCP is 6 bits")
	}
}

func equalCounts(got, want map[uint8]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestDSCPOptions checks Options.DSCP's validation and DSCPBestEffort.
func TestDSCPOptions(t *testing.T) {
	lan := simlan.New(t, simlan.Options{Seed: 1}, simlan.HostOptions{N: hostA})
	st := lan.Hosts[0].Stack
	for _, c := range []struct {
		dscp int
		ok   bool
	}{{0, true}, {mediaport.DSCPBestEffort, true}, {63, true}, {64, false}, {-2, false}} {
		m, err := mediaport.NewManager(st, mediaport.Options{PortMin: 20000, PortMax: 20001, DSCP: c.dscp})
		if (err == nil) != c.ok {
			t.Errorf("DSCP %d: error %v; want ok %v", c.dscp, err, c.ok)
		}
		if m != nil {
			m.Close()
		}
	}
}
