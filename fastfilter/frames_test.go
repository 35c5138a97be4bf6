package fastfilter_test

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// Addresses of the stack under test (the receiver) and of its peer.
var (
	ourMAC   = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x02")
	peerMAC  = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x01")
	otherMAC = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x99")

	ourV4   = netip.MustParseAddr("198.51.100.2")
	peerV4  = netip.MustParseAddr("198.51.100.1")
	otherV4 = netip.MustParseAddr("198.51.100.99")
	ourV6   = netip.MustParseAddr("2001:db8::2")
	peerV6  = netip.MustParseAddr("2001:db8::1")
	otherV6 = netip.MustParseAddr("2001:db8::99")
)

const (
	rtpPort  = 20000 // registered with rtpPort+1 in the fixtures
	peerPort = 40000
	testVLAN = 42
)

// udpFrame describes an Ethernet frame carrying one UDP datagram. The zero
// values of the optional fields give a plain, valid frame.
type udpFrame struct {
	src, dst         netip.AddrPort
	payload          []byte
	dstMAC           tcpip.LinkAddress // default ourMAC
	vlan             int               // 802.1Q tag with this VID when >= 0 and tagged is set
	tagged           bool
	ipOptions        []byte // IPv4 options (a multiple of 4 bytes)
	flagsOffset      uint16 // IPv4 flags and fragment offset (header.IPv4FlagMoreFragments, offset in 8-byte units)
	noUDPChecksum    bool
	v6Ext            bool  // an IPv6 extension header before UDP
	v6ExtID          uint8 // its identifier (hop-by-hop, fragment)
	protocol         uint8 // other than UDP
	padding          int   // Ethernet padding after the IP packet
	mutateIP         func(b []byte)
	mutateUDP        func(u header.UDP)
	keepIPv4Checksum bool // do not recompute the IPv4 header checksum after mutateIP
}

func (u udpFrame) build() []byte {
	v6 := u.dst.Addr().Is6()
	ethLen := header.EthernetMinimumSize
	if u.tagged {
		ethLen += 4
	}
	ipLen := header.IPv4MinimumSize + len(u.ipOptions)
	if v6 {
		ipLen = header.IPv6MinimumSize
		if u.v6Ext {
			ipLen += 8
		}
	}
	udpLen := header.UDPMinimumSize + len(u.payload)
	b := make([]byte, ethLen+ipLen+udpLen+u.padding)

	dstMAC := u.dstMAC
	if dstMAC == "" {
		dstMAC = ourMAC
	}
	netProto := header.IPv4ProtocolNumber
	if v6 {
		netProto = header.IPv6ProtocolNumber
	}
	eth := header.Ethernet(b)
	eth.Encode(&header.EthernetFields{SrcAddr: peerMAC, DstAddr: dstMAC, Type: netProto})
	if u.tagged {
		binary.BigEndian.PutUint16(b[12:], 0x8100)
		binary.BigEndian.PutUint16(b[14:], uint16(5<<13|u.vlan)) // priority 5 (voice)
		binary.BigEndian.PutUint16(b[16:], uint16(netProto))
	}
	ipb := b[ethLen : ethLen+ipLen+udpLen]
	udpb := header.UDP(ipb[ipLen:])
	src, dst := stack.AddrFrom(u.src.Addr()), stack.AddrFrom(u.dst.Addr())
	proto := uint8(header.UDPProtocolNumber)
	if u.protocol != 0 {
		proto = u.protocol
	}
	if v6 {
		nh := proto
		if u.v6Ext {
			nh = u.v6ExtID
			ext := ipb[header.IPv6MinimumSize:]
			ext[0] = proto // next header after the extension; the rest is zero (PadN, fragment offset 0 with M set below)
			if u.v6ExtID == uint8(header.IPv6FragmentExtHdrIdentifier) {
				binary.BigEndian.PutUint16(ext[2:], 1) // M flag
			}
		}
		header.IPv6(ipb).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(ipLen - header.IPv6MinimumSize + udpLen),
			TransportProtocol: tcpip.TransportProtocolNumber(nh),
			HopLimit:          64,
			SrcAddr:           src,
			DstAddr:           dst,
		})
	} else {
		ip := header.IPv4(ipb)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(ipLen + udpLen),
			ID:          7,
			TTL:         64,
			Protocol:    proto,
			SrcAddr:     src,
			DstAddr:     dst,
			Options:     header.IPv4OptionsSerializer(nil),
		})
		if len(u.ipOptions) > 0 {
			ip.SetHeaderLength(uint8(ipLen))
			copy(ipb[header.IPv4MinimumSize:], u.ipOptions)
		}
		binary.BigEndian.PutUint16(ipb[6:], u.flagsOffset)
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	udpb.Encode(&header.UDPFields{SrcPort: u.src.Port(), DstPort: u.dst.Port(), Length: uint16(udpLen)})
	copy(udpb.Payload(), u.payload)
	if !u.noUDPChecksum {
		xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(udpLen))
		xsum = checksum.Checksum(u.payload, xsum)
		c := ^udpb.CalculateChecksum(xsum)
		if c == 0 {
			c = 0xffff
		}
		udpb.SetChecksum(c)
	}
	if u.mutateUDP != nil {
		u.mutateUDP(udpb)
	}
	if u.mutateIP != nil {
		u.mutateIP(ipb)
		if !v6 && !u.keepIPv4Checksum {
			ip := header.IPv4(ipb)
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
		}
	}
	return b
}

func v4Frame(payload []byte) udpFrame {
	return udpFrame{src: netip.AddrPortFrom(peerV4, peerPort), dst: netip.AddrPortFrom(ourV4, rtpPort), payload: payload}
}

func v6Frame(payload []byte) udpFrame {
	return udpFrame{src: netip.AddrPortFrom(peerV6, peerPort), dst: netip.AddrPortFrom(ourV6, rtpPort), payload: payload}
}

// fixture is a stack (the receiver) on a simulated link with a filter whose
// hook is installed and ports rtpPort, rtpPort+1 registered to a recorder.
type fixture struct {
	clock *sim.Clock
	net   *sim.Network
	ep    *sim.Endpoint
	st    *stack.Stack
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
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	fx := &fixture{clock: sim.NewClock(), rec: &recorder{}}
	var err error
	fx.net, err = sim.NewNetwork(sim.NetworkOptions{Clock: fx.clock, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	fx.ep, err = fx.net.NewEndpoint(sim.EndpointOptions{MAC: ourMAC, RXChecksumOffload: o.offload})
	if err != nil {
		t.Fatal(err)
	}
	fx.st, err = stack.New(stack.Options{
		NICs:  []stack.NICOptions{{Name: "sim0", Link: fx.ep, Addrs: []string{"198.51.100.2/24", "2001:db8::2/64"}}},
		Clock: fx.clock,
		Seed:  1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fx.st.Close)
	fx.f, err = fastfilter.New(fastfilter.Options{Stack: fx.st.Netstack(), NIC: fx.st.NICID(0), VLAN: testVLAN})
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

func simEndpointOptions(mac tcpip.LinkAddress) sim.EndpointOptions {
	return sim.EndpointOptions{MAC: mac}
}
