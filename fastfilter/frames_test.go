package fastfilter_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The receiver is host frames.Stack, the sender host frames.Peer; otherHost
// is a third host on the link, whose frames are not the receiver's.
const otherHost = 0x99

const (
	rtpPort  = 20000 // registered with rtpPort+1 in the fixtures
	peerPort = 40000
	testVLAN = 42
)

// v4Frame is a datagram from the peer to the RTP port, over IPv4.
func v4Frame(payload []byte) frames.UDP {
	return frames.UDP{Src: netip.AddrPortFrom(frames.PeerV4, peerPort), Dst: netip.AddrPortFrom(frames.StackV4, rtpPort), Payload: payload, ID: 7}
}

// v6Frame is v4Frame over IPv6.
func v6Frame(payload []byte) frames.UDP {
	return frames.UDP{Src: netip.AddrPortFrom(frames.PeerV6, peerPort), Dst: netip.AddrPortFrom(frames.StackV6, rtpPort), Payload: payload}
}

// fixture is a stack (the receiver) on a simulated LAN with a filter whose
// hook is installed and ports rtpPort, rtpPort+1 registered to a recorder.
type fixture struct {
	lan   *simlan.LAN
	clock *sim.Clock    // lan.Clock
	ep    *sim.Endpoint // the receiver's link
	st    *stack.Stack  // the receiver
	f     *fastfilter.Filter
	reg   *fastfilter.Registration
	rec   *recorder
	ring  *fastfilter.Ring // with fixtureOptions.ring
}

type fixtureOptions struct {
	offload bool
	noHook  bool
	// ring registers the ports to a Ring (fixture.ring) instead of the
	// recorder: the path that verifies the UDP checksum while copying.
	ring bool
	// lazy opens the ports' netstack endpoints on demand
	// (Options.UnboundUDP, through the stack's default UDP handler).
	lazy bool
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	lan := simlan.New(t, simlan.Options{Seed: 1}, simlan.HostOptions{N: frames.Stack, RXChecksumOffload: o.offload})
	fx := &fixture{lan: lan, clock: lan.Clock, ep: lan.Hosts[0].Link, st: lan.Hosts[0].Stack, rec: &recorder{}}
	var err error
	opts := fastfilter.Options{Stack: fx.st.Netstack(), NIC: fx.st.NICID(0)}
	if o.lazy {
		opts.UnboundUDP = func(h func(tcpipstack.TransportEndpointID, *tcpipstack.PacketBuffer) bool) { fx.st.SetUnboundUDP(0, h) }
	}
	fx.f, err = fastfilter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fx.f.Close)
	if !o.noHook {
		fx.ep.SetFrameHook(fx.f.Hook)
	}
	if o.ring {
		fx.ring = newRing(t, fastfilter.RingOptions{Packets: 4})
		fx.reg, err = fx.f.RegisterRing(rtpPort, rtpPort+1, fx.ring)
	} else {
		fx.reg, err = fx.f.Register(rtpPort, rtpPort+1, fx.rec.receive)
	}
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// takeRing reads what the fixture's Ring holds, as the recorder keeps it
// (without receive times).
func (fx *fixture) takeRing() []received {
	var got []received
	buf := make([]byte, 1<<16)
	for {
		n, info, err := fx.ring.ReadPacket(buf, past)
		if err != nil {
			return got
		}
		got = append(got, received{string(buf[:n]), info.Src, info.Dst, info.Version, time.Time{}, info.ViaNetstack})
	}
}

// recorder is a ReceiveFunc that keeps copies of what it is given.
type recorder struct {
	mu  sync.Mutex
	got []received
}

type received struct {
	Payload     string
	Src, Dst    netip.AddrPort
	Version     uint8
	ReceivedAt  time.Time
	ViaNetstack bool
}

func (r *recorder) receive(d *fastfilter.Datagram) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, received{string(d.Payload), d.Src, d.Dst, d.Version, d.ReceivedAt(), d.ViaNetstack})
}

func (r *recorder) take() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}
