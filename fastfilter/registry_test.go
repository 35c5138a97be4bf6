package fastfilter_test

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link"
)

func nop(*fastfilter.Datagram) {}

// bindNetstack binds a plain netstack UDP socket on port (any address), as
// an application using netstack directly would.
func (fx *fixture) bindNetstack(t *testing.T, proto tcpip.NetworkProtocolNumber, port uint16) (tcpip.Endpoint, tcpip.Error) {
	t.Helper()
	var wq waiter.Queue
	ep, err := fx.st.Netstack().NewEndpoint(header.UDPProtocolNumber, proto, &wq)
	if err != nil {
		t.Fatal(err)
	}
	ep.SocketOptions().SetV6Only(false) // an IPv6 socket takes IPv4 too
	if err := ep.Bind(tcpip.FullAddress{Port: port}); err != nil {
		ep.Close()
		return nil, err
	}
	t.Cleanup(ep.Close)
	return ep, nil
}

func TestRegisterErrors(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	for _, tc := range []struct {
		name   string
		lo, hi uint16
		fn     fastfilter.ReceiveFunc
		want   error
	}{
		{"nil func", 30000, 30000, nil, fastfilter.ErrNoReceiver},
		{"below range", 9999, 10001, nop, fastfilter.ErrPortRange},
		{"above range", 60000, 60001, nop, fastfilter.ErrPortRange},
		{"reversed", 30001, 30000, nop, fastfilter.ErrPortRange},
		{"overlaps a registration", rtpPort + 1, rtpPort + 2, nop, fastfilter.ErrPortInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := fx.f.Register(tc.lo, tc.hi, tc.fn)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Register(%d, %d) = %v, %v; want %v", tc.lo, tc.hi, r, err, tc.want)
			}
			t.Log(err)
		})
	}
	if _, ok := fx.f.PortCounters(rtpPort + 2); ok {
		t.Error("a failed registration left port rtpPort+2 registered")
	}
}

// TestRegisterPortInUseBothWays: a port a netstack socket holds cannot be
// registered, and a registered port cannot be bound by a netstack socket.
func TestRegisterPortInUseBothWays(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	if _, err := fx.bindNetstack(t, header.IPv4ProtocolNumber, 30001); err != nil {
		t.Fatal(err)
	}
	_, err := fx.f.Register(30000, 30002, nop)
	if !errors.Is(err, fastfilter.ErrPortInUse) {
		t.Fatalf("Register over a bound netstack socket: %v, want ErrPortInUse", err)
	}
	t.Log(err)
	// Nothing of the failed registration is left: 30000 is free for both.
	reg, err := fx.f.Register(30000, 30000, nop)
	if err != nil {
		t.Fatalf("30000 not released after the failed registration: %v", err)
	}
	for _, proto := range []tcpip.NetworkProtocolNumber{header.IPv4ProtocolNumber, header.IPv6ProtocolNumber} {
		if _, err := fx.bindNetstack(t, proto, 30000); err == nil {
			t.Errorf("netstack socket (proto %d) bound a registered port", proto)
		} else if _, ok := err.(*tcpip.ErrPortInUse); !ok {
			t.Errorf("netstack bind of a registered port: %v, want ErrPortInUse", err)
		}
	}
	reg.Close()
	if _, err := fx.bindNetstack(t, header.IPv4ProtocolNumber, 30000); err != nil {
		t.Errorf("port not released by Close: %v", err)
	}
	if reg.NetstackEndpoint(30000) == nil || reg.NetstackEndpoint(30001) != nil {
		t.Error("NetstackEndpoint: want the endpoint for 30000 and nil outside the registration")
	}
}

func TestRegistrationCloseStopsDelivery(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	frame := v4Frame(testPayload).Build()
	if v := fx.f.Hook(frame); v != link.Handled {
		t.Fatalf("verdict %v before Close", v)
	}
	if err := fx.reg.Close(); err != nil {
		t.Fatal(err)
	}
	fx.reg.Close() // twice is harmless
	if v := fx.f.Hook(frame); v != link.Pass {
		t.Fatalf("verdict %v after Close, want pass", v)
	}
	if got := len(fx.rec.take()); got != 1 {
		t.Errorf("%d datagrams delivered, want 1 (before Close only)", got)
	}
	if c := fx.reg.Counters(); c.FastDelivered != 1 {
		t.Errorf("the closed registration's counters: %+v", c)
	}
}

// TestCountersSurviveUnregister: a port's counts stay in the filter's totals
// after it is unregistered and registered again, and a count that lands on
// the old registration after Close (a frame that was being classified) is
// not lost.
func TestCountersSurviveUnregister(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	frame := v4Frame(testPayload).Build()
	fx.f.Hook(frame)
	fx.reg.Close()
	fx.f.Hook(frame) // not registered: counted by the filter
	var late fastfilter.Datagram
	reg2, err := fx.f.Register(rtpPort, rtpPort, func(d *fastfilter.Datagram) {
		late = *d // a copy, for a count after Close
	})
	if err != nil {
		t.Fatal(err)
	}
	fx.f.Hook(frame)
	fx.f.Hook(frame)
	want := fastfilter.Counters{FastDelivered: 3, ToNetstack: 1, Passed: fastfilter.PassedCounters{NotRegistered: 1}}
	if diff := cmp.Diff(want, fx.f.Counters()); diff != "" {
		t.Errorf("totals with the port registered again (-want +got):\n%s", diff)
	}
	reg2.Close()
	if diff := cmp.Diff(want, fx.f.Counters()); diff != "" {
		t.Errorf("totals after it is closed again (-want +got):\n%s", diff)
	}
	want.Dropped.BufferFull = 1
	late.ReportBufferFull() // as a frame in flight at Close counts
	if diff := cmp.Diff(want, fx.f.Counters()); diff != "" {
		t.Errorf("totals after a late count (-want +got):\n%s", diff)
	}
}

func TestFilterCloseReleasesEverything(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	fx.f.Close()
	if _, err := fx.f.Register(30000, 30000, nop); !errors.Is(err, fastfilter.ErrClosed) {
		t.Errorf("Register after Close: %v, want ErrClosed", err)
	}
	if _, err := fx.bindNetstack(t, header.IPv4ProtocolNumber, rtpPort); err != nil {
		t.Errorf("registered port not released by Filter.Close: %v", err)
	}
	if v := fx.f.Hook(v4Frame(testPayload).Build()); v != link.Pass {
		t.Errorf("verdict %v after Close, want pass", v)
	}
}

func TestNewValidates(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	ns := fx.st.Netstack()
	for _, tc := range []struct {
		name string
		opts fastfilter.Options
	}{
		{"no stack", fastfilter.Options{NIC: 1}},
		{"no such NIC", fastfilter.Options{Stack: ns, NIC: 9}},
		{"empty range", fastfilter.Options{Stack: ns, NIC: 1, PortMin: 3000, PortMax: 2000}},
		{"port 0", fastfilter.Options{Stack: ns, NIC: 1, PortMin: 0, PortMax: 2000}},
	} {
		if _, err := fastfilter.New(tc.opts); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	f, err := fastfilter.New(fastfilter.Options{Stack: ns, NIC: 1, PortMin: 5004, PortMax: 5005, AddressRefresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if lo, hi := f.PortRange(); lo != 5004 || hi != 5005 {
		t.Errorf("PortRange = %d-%d", lo, hi)
	}
}

// TestRegisterUnderTraffic registers and unregisters ports while two
// goroutines push frames for them, one through the hook, one through the link
// (run with -race). Every frame is delivered whole to a registration that was
// live, through one lane, or passed on; nothing is torn, dropped or
// delivered twice.
func TestRegisterUnderTraffic(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	const lo, hi = 30000, 30003
	var traffic [][]byte
	for port := uint16(lo); port <= hi; port++ {
		u := v4Frame([]byte{byte(port), 1, 2, 3})
		u.Dst = netip.AddrPortFrom(frames.StackV4, port)
		traffic = append(traffic, u.Build())
		u = v6Frame([]byte{byte(port), 4, 5, 6})
		u.Dst = netip.AddrPortFrom(frames.StackV6, port)
		traffic = append(traffic, u.Build())
	}
	var delivered, bad atomic.Int64
	fn := func(d *fastfilter.Datagram) {
		delivered.Add(1)
		if len(d.Payload) != 4 || d.Payload[0] != byte(d.Dst.Port()) || d.Dst.Port() < lo || d.Dst.Port() > hi {
			bad.Add(1)
		}
	}
	stop := make(chan struct{})
	var handled, passed, throughLink atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				frame := traffic[i%len(traffic)]
				if g == 1 {
					// Through the link: what the hook passes reaches
					// netstack, and the netstack lane while it is bound.
					fx.ep.DeliverFrame(frame)
					throughLink.Add(1)
					continue
				}
				switch fx.f.Hook(frame) {
				case link.Handled:
					handled.Add(1)
				case link.Pass:
					passed.Add(1)
				}
			}
		}()
	}
	for i := range 300 {
		a, b := uint16(lo+i%2), uint16(hi-i%3%2)
		reg, err := fx.f.Register(a, b, fn)
		if err != nil {
			t.Fatal(err)
		}
		var reg2 *fastfilter.Registration
		if a > lo {
			if reg2, err = fx.f.Register(lo, a-1, fn); err != nil {
				t.Fatal(err)
			}
		}
		reg.Close()
		if reg2 != nil {
			reg2.Close()
		}
	}
	close(stop)
	wg.Wait()
	c := fx.f.Counters()
	if bad.Load() != 0 {
		t.Errorf("%d torn or misrouted datagrams", bad.Load())
	}
	// Every frame is for our MAC: what the link did not hand to netstack,
	// the hook handled.
	hooked := uint64(throughLink.Load()) - fx.ep.Stats.RxToNetstack.Load()
	if c.FastDelivered != uint64(handled.Load())+hooked || c.Dropped.Total() != 0 {
		t.Errorf("handled %d by the hook, %d by the link, counters %+v: every handled frame must be one fast delivery", handled.Load(), hooked, c)
	}
	if uint64(delivered.Load()) != c.FastDelivered+c.NetstackDelivered {
		t.Errorf("%d datagrams delivered, counters say %d fast + %d via netstack", delivered.Load(), c.FastDelivered, c.NetstackDelivered)
	}
	t.Logf("during 300 register/unregister rounds: hook handled %d, passed %d; link hooked %d, passed %d; %d delivered via netstack",
		handled.Load(), passed.Load(), hooked, fx.ep.Stats.RxToNetstack.Load(), c.NetstackDelivered)
}
