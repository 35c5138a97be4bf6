// Package callstest builds what tests of packages calls and ng run on: a
// simulated LAN (internal/simlan) with the relay host R, host 2, media
// ports 30000-30099 and a relay.Service on them, two SIP user agents'
// hosts, A (host 1) and B (host 3), with media ports of their own, and a
// calls.Registry whose media addresses are R's, on a fake clock.
//
//	f := callstest.New(t, callstest.Options{})
//	res, err := f.Calls.Offer(calls.Params{...})
//	f.LAN.Run(time.Second)
package callstest

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mediastack/mediastack/calls"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/relay"
)

// PortMin and PortMax are R's media port range.
const PortMin, PortMax = 30000, 30099

// Options change the fixture.
type Options struct {
	// Relay and Calls are passed to relay.New and calls.New; the fixture
	// fills in Manager, Relays, Addrs, Now and OnEnd.
	Relay relay.Options
	Calls calls.Options
	// PortMax, when set, narrows R's range (to run out of ports).
	PortMax uint16
}

// Fixture is a LAN with a relay host and a call registry.
type Fixture struct {
	LAN    *simlan.LAN
	R      *simlan.Host
	A, B   *simlan.Host
	Relays *relay.Service
	Calls  *calls.Registry
	// Clock is the registry's clock: the LAN's (link/sim.Epoch at the
	// start), so times are the same on every run.
	Clock func() time.Time

	mu    sync.Mutex
	ended []relay.EndReason
}

// New builds the fixture; everything is closed when the test ends.
func New(tb testing.TB, o Options) *Fixture {
	tb.Helper()
	hi := uint16(PortMax)
	if o.PortMax != 0 {
		hi = o.PortMax
	}
	lan := simlan.New(tb, simlan.Options{Seed: 1})
	f := &Fixture{LAN: lan}
	f.A = lan.AddHost(simlan.HostOptions{N: 1, Media: &mediaport.Options{PortMin: 6000, PortMax: 6099}})
	f.R = lan.AddHost(simlan.HostOptions{N: 2, Media: &mediaport.Options{PortMin: PortMin, PortMax: hi}})
	f.B = lan.AddHost(simlan.HostOptions{N: 3, Media: &mediaport.Options{PortMin: 7000, PortMax: 7099}})
	lan.Run(time.Second)
	f.Clock = lan.Clock.Now

	var reg atomic.Pointer[calls.Registry]
	ro := o.Relay
	ro.Manager = f.R.Media
	ro.OnEnd = func(info relay.Info, reason relay.EndReason) {
		f.mu.Lock()
		f.ended = append(f.ended, reason)
		f.mu.Unlock()
		if c := reg.Load(); c != nil {
			c.RelayEnded(info, reason)
		}
	}
	svc, err := relay.New(ro)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(svc.Close)
	f.Relays = svc
	co := o.Calls
	co.Relays = svc
	if co.Addrs == nil {
		co.Addrs = []netip.Addr{frames.V4(2), frames.V6(2)}
	}
	co.Now = f.Clock
	c, err := calls.New(co)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	reg.Store(c)
	f.Calls = c
	return f
}

// Ended returns the reasons of the relays that ended by themselves.
func (f *Fixture) Ended() []relay.EndReason {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]relay.EndReason(nil), f.ended...)
}

// Held returns how many of R's media ports are open (relays hold them).
func (f *Fixture) Held() int { return f.Relays.Stats().Relays }

// ProxyAddr is the SIP proxy's address, where requests come from.
var ProxyAddr = netip.MustParseAddr("203.0.113.5")
