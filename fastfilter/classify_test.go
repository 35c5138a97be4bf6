package fastfilter_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link"
)

var testPayload = []byte("\x80\x00\x00\x01rtp payload bytes")

// classifyCase is one frame and what the filter must do with it.
type classifyCase struct {
	name    string
	frame   []byte
	verdict link.Verdict
	deliver bool                       // the recorder gets testPayload
	total   func(*fastfilter.Counters) // the counter the frame moves
	port    func(*fastfilter.Counters) // the counter it moves for rtpPort (nil: none)
}

func incFast(c *fastfilter.Counters)          { c.FastDelivered++ }
func incNotOurs(c *fastfilter.Counters)       { c.Dropped.NotOurs++ }
func incTruncated(c *fastfilter.Counters)     { c.Dropped.Truncated++ }
func incBadLength(c *fastfilter.Counters)     { c.Dropped.BadLength++ }
func incBadChecksum(c *fastfilter.Counters)   { c.Dropped.BadChecksum++ }
func incNotIP(c *fastfilter.Counters)         { c.Passed.NotIP++; c.ToNetstack++ }
func incNotUDP(c *fastfilter.Counters)        { c.Passed.NotUDP++; c.ToNetstack++ }
func incNotLocal(c *fastfilter.Counters)      { c.Passed.NotLocal++; c.ToNetstack++ }
func incNotRegistered(c *fastfilter.Counters) { c.Passed.NotRegistered++; c.ToNetstack++ }
func incFragment(c *fastfilter.Counters)      { c.Passed.Fragment++; c.ToNetstack++ }
func incIPOptions(c *fastfilter.Counters)     { c.Passed.IPOptions++; c.ToNetstack++ }
func incUnusual(c *fastfilter.Counters)       { c.Passed.Unusual++; c.ToNetstack++ }
func incMalformed(c *fastfilter.Counters)     { c.Passed.Malformed++; c.ToNetstack++ }
func incMartian(c *fastfilter.Counters)       { c.Dropped.Martian++ }

// classifyCases covers every branch of the classifier for one IP version,
// untagged or tagged.
func classifyCases(v6, tagged bool) []classifyCase {
	base := func() frames.UDP {
		u := v4Frame(testPayload)
		if v6 {
			u = v6Frame(testPayload)
		}
		u.Tagged = tagged
		return u
	}
	other, ourAddr := frames.V4(otherHost), frames.StackV4
	if v6 {
		other, ourAddr = frames.V6(otherHost), frames.StackV6
	}
	with := func(mod func(*frames.UDP)) []byte {
		u := base()
		mod(&u)
		return u.Build()
	}
	cases := []classifyCase{
		{name: "registered port", frame: base().Build(), verdict: link.Handled, deliver: true, total: incFast, port: incFast},
		{name: "RTCP port", frame: with(func(u *frames.UDP) { u.Dst = netip.AddrPortFrom(ourAddr, rtpPort+1) }), verdict: link.Handled, total: incFast},
		{name: "broadcast MAC", frame: with(func(u *frames.UDP) { u.DstMAC = header.EthernetBroadcastAddress }), verdict: link.Handled, deliver: true, total: incFast, port: incFast},
		{name: "Ethernet padding", frame: with(func(u *frames.UDP) { u.Padding = 20 }), verdict: link.Handled, deliver: true, total: incFast, port: incFast},
		{name: "unregistered port", frame: with(func(u *frames.UDP) { u.Dst = netip.AddrPortFrom(ourAddr, rtpPort+2) }), verdict: link.Pass, total: incNotRegistered},
		{name: "port below range", frame: with(func(u *frames.UDP) { u.Dst = netip.AddrPortFrom(ourAddr, 53) }), verdict: link.Pass, total: incNotRegistered},
		{name: "another MAC", frame: with(func(u *frames.UDP) { u.DstMAC = frames.MAC(otherHost) }), verdict: link.Handled, total: incNotOurs},
		{name: "another IP", frame: with(func(u *frames.UDP) { u.Dst = netip.AddrPortFrom(other, rtpPort) }), verdict: link.Pass, total: incNotLocal},
		{name: "not UDP", frame: with(func(u *frames.UDP) { u.Protocol = header.TCPProtocolNumber }), verdict: link.Pass, total: incNotUDP},
		{name: "UDP length short of payload", frame: with(func(u *frames.UDP) {
			u.MutateUDP = func(h header.UDP) { h.SetLength(4) }
		}), verdict: link.Handled, total: incBadLength, port: incBadLength},
		{name: "UDP length past IP payload", frame: with(func(u *frames.UDP) {
			u.MutateUDP = func(h header.UDP) { h.SetLength(h.Length() + 1) }
		}), verdict: link.Handled, total: incTruncated, port: incTruncated},
		{name: "bad UDP checksum", frame: with(func(u *frames.UDP) {
			u.MutateUDP = func(h header.UDP) { h.SetChecksum(h.Checksum() ^ 0x0101) }
		}), verdict: link.Handled, total: incBadChecksum, port: incBadChecksum},
		{name: "corrupt payload", frame: func() []byte {
			b := base().Build()
			b[len(b)-1] ^= 0x40
			return b
		}(), verdict: link.Handled, total: incBadChecksum, port: incBadChecksum},
		{name: "truncated frame", frame: func() []byte {
			b := base().Build()
			return b[:len(b)-3]
		}(), verdict: link.Handled, total: incTruncated, port: incTruncated},
		{name: "multicast source", frame: with(func(u *frames.UDP) {
			if v6 {
				u.Src = netip.AddrPortFrom(netip.MustParseAddr("ff02::1"), peerPort)
			} else {
				u.Src = netip.AddrPortFrom(netip.MustParseAddr("224.0.0.1"), peerPort)
			}
		}), verdict: link.Handled, total: incMartian, port: incMartian},
		{name: "own address as source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(ourAddr, peerPort) }), verdict: link.Handled, total: incMartian, port: incMartian},
		{name: "loopback source", frame: with(func(u *frames.UDP) {
			if v6 {
				u.Src = netip.AddrPortFrom(netip.IPv6Loopback(), peerPort)
			} else {
				u.Src = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peerPort)
			}
		}), verdict: link.Handled, total: incMartian, port: incMartian},
		{name: "short frame", frame: base().Build()[:10], verdict: link.Pass, total: incMalformed},
		{name: "short IP header", frame: func() []byte {
			b := base().Build()
			n := header.EthernetMinimumSize + 12
			if tagged {
				n += 4
			}
			return b[:n]
		}(), verdict: link.Pass, total: incMalformed},
	}
	if v6 {
		cases = append(cases,
			classifyCase{name: "zero UDP checksum", frame: with(func(u *frames.UDP) { u.NoUDPChecksum = true }), verdict: link.Handled, total: incBadChecksum, port: incBadChecksum},
			classifyCase{name: "fragment header", frame: with(func(u *frames.UDP) { u.Extension, u.ExtensionID = true, header.IPv6FragmentExtHdrIdentifier }), verdict: link.Pass, total: incFragment},
			classifyCase{name: "hop-by-hop header", frame: with(func(u *frames.UDP) { u.Extension, u.ExtensionID = true, header.IPv6HopByHopOptionsExtHdrIdentifier }), verdict: link.Pass, total: incIPOptions},
			classifyCase{name: "payload length zero", frame: with(func(u *frames.UDP) {
				u.MutateIP = func(b []byte) { header.IPv6(b).SetPayloadLength(0) }
			}), verdict: link.Handled, total: incBadLength, port: incBadLength},
			classifyCase{name: "payload length past frame", frame: with(func(u *frames.UDP) {
				u.MutateIP = func(b []byte) { header.IPv6(b).SetPayloadLength(header.IPv6(b).PayloadLength() + 1) }
			}), verdict: link.Handled, total: incTruncated, port: incTruncated},
			classifyCase{name: "IPv4-mapped source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(netip.MustParseAddr("::ffff:198.51.100.9"), peerPort) }), verdict: link.Handled, total: incMartian, port: incMartian},
			classifyCase{name: "unspecified source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(netip.IPv6Unspecified(), peerPort) }), verdict: link.Handled, total: incMartian, port: incMartian},
		)
	} else {
		cases = append(cases,
			classifyCase{name: "zero UDP checksum", frame: with(func(u *frames.UDP) { u.NoUDPChecksum = true }), verdict: link.Handled, deliver: true, total: incFast, port: incFast},
			classifyCase{name: "first fragment", frame: with(func(u *frames.UDP) { u.Flags = header.IPv4FlagMoreFragments }), verdict: link.Pass, total: incFragment, port: incFragment},
			classifyCase{name: "last fragment", frame: with(func(u *frames.UDP) { u.FragmentOffset = 24 }), verdict: link.Pass, total: incFragment},
			classifyCase{name: "don't fragment", frame: with(func(u *frames.UDP) { u.Flags = header.IPv4FlagDontFragment }), verdict: link.Handled, deliver: true, total: incFast, port: incFast},
			classifyCase{name: "IP options", frame: with(func(u *frames.UDP) { u.IPOptions = []byte{1, 1, 1, 0} }), verdict: link.Pass, total: incIPOptions, port: incIPOptions},
			classifyCase{name: "bad header checksum", frame: with(func(u *frames.UDP) {
				u.MutateIP = func(b []byte) { b[8]-- } // TTL, checksum left stale
				u.StaleIPv4Checksum = true
			}), verdict: link.Handled, total: incBadChecksum, port: incBadChecksum},
			classifyCase{name: "total length past frame", frame: with(func(u *frames.UDP) {
				u.MutateIP = func(b []byte) { header.IPv4(b).SetTotalLength(header.IPv4(b).TotalLength() + 1) }
			}), verdict: link.Handled, total: incTruncated, port: incTruncated},
			classifyCase{name: "total length short of UDP header", frame: with(func(u *frames.UDP) {
				u.MutateIP = func(b []byte) { header.IPv4(b).SetTotalLength(24) }
			}), verdict: link.Handled, total: incBadLength, port: incBadLength},
			classifyCase{name: "IHL below 5", frame: with(func(u *frames.UDP) {
				u.MutateIP = func(b []byte) { b[0] = 0x44 }
			}), verdict: link.Pass, total: incMalformed},
			classifyCase{name: "IHL past total length", frame: with(func(u *frames.UDP) {
				u.Padding = 40 // room for the header the IHL claims, so only the lengths disagree
				u.MutateIP = func(b []byte) {
					b[0] = 0x4f // 60 bytes of header
					header.IPv4(b).SetTotalLength(header.IPv4MinimumSize + header.UDPMinimumSize)
				}
			}), verdict: link.Pass, total: incMalformed},
			classifyCase{name: "zero source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(netip.IPv4Unspecified(), peerPort) }), verdict: link.Handled, total: incMartian, port: incMartian},
			classifyCase{name: "this-network source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(netip.MustParseAddr("0.1.2.3"), peerPort) }), verdict: link.Handled, total: incMartian, port: incMartian},
			classifyCase{name: "class E source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(netip.MustParseAddr("240.0.0.1"), peerPort) }), verdict: link.Pass, total: incUnusual, port: incUnusual},
			classifyCase{name: "subnet broadcast source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.255"), peerPort) }), verdict: link.Handled, total: incMartian, port: incMartian},
			classifyCase{name: "broadcast source", frame: with(func(u *frames.UDP) { u.Src = netip.AddrPortFrom(netip.MustParseAddr("255.255.255.255"), peerPort) }), verdict: link.Handled, total: incMartian, port: incMartian},
			classifyCase{name: "wrong IP version", frame: with(func(u *frames.UDP) { u.MutateIP = func(b []byte) { b[0] = 0x65 } }), verdict: link.Pass, total: incMalformed},
		)
	}
	return cases
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name       string
		v6, tagged bool
	}{
		{"v4", false, false}, {"v4/vlan", false, true}, {"v6", true, false}, {"v6/vlan", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, fixtureOptions{})
			for _, c := range classifyCases(tc.v6, tc.tagged) {
				t.Run(c.name, func(t *testing.T) {
					fx.check(t, c)
				})
			}
		})
	}
}

// check runs one case through the hook and compares verdict, delivery and
// counter deltas.
func (fx *fixture) check(t *testing.T, c classifyCase) {
	t.Helper()
	wantTotal := fx.f.Counters()
	c.total(&wantTotal)
	wantPort, _ := fx.f.PortCounters(rtpPort)
	if c.port != nil {
		c.port(&wantPort)
	}
	if got := fx.f.Hook(c.frame); got != c.verdict {
		t.Errorf("verdict = %v, want %v", got, c.verdict)
	}
	got := fx.rec.take()
	if c.deliver {
		if len(got) != 1 || got[0].Payload != string(testPayload) || got[0].ViaNetstack {
			t.Errorf("delivered %+v, want one fast datagram with the test payload", got)
		}
	} else if !isFast(c) && len(got) != 0 {
		t.Errorf("delivered %+v, want nothing", got)
	}
	if diff := cmp.Diff(wantTotal, fx.f.Counters()); diff != "" {
		t.Errorf("total counters (-want +got):\n%s", diff)
	}
	gotPort, _ := fx.f.PortCounters(rtpPort)
	if diff := cmp.Diff(wantPort, gotPort); diff != "" {
		t.Errorf("port %d counters (-want +got):\n%s", rtpPort, diff)
	}
}

func isFast(c classifyCase) bool {
	var x fastfilter.Counters
	c.total(&x)
	return x.FastDelivered == 1
}

func TestClassifyDatagramFields(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	fx.clock.Advance(1234567)
	for _, tc := range []struct {
		name  string
		frame frames.UDP
		want  received
	}{
		{"v4", v4Frame(testPayload), received{
			Payload: string(testPayload), Version: 4,
			Src: netip.AddrPortFrom(frames.PeerV4, peerPort), Dst: netip.AddrPortFrom(frames.StackV4, rtpPort),
		}},
		{"v6", v6Frame(testPayload), received{
			Payload: string(testPayload), Version: 6,
			Src: netip.AddrPortFrom(frames.PeerV6, peerPort), Dst: netip.AddrPortFrom(frames.StackV6, rtpPort),
		}},
		{"empty payload", v4Frame(nil), received{
			Payload: "", Version: 4,
			Src: netip.AddrPortFrom(frames.PeerV4, peerPort), Dst: netip.AddrPortFrom(frames.StackV4, rtpPort),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v := fx.f.Hook(tc.frame.Build()); v != link.Handled {
				t.Fatalf("verdict %v, want handled", v)
			}
			tc.want.ReceivedAt = fx.clock.Now()
			if diff := cmp.Diff([]received{tc.want}, fx.rec.take(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("datagram (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassifyOtherVLANPassed(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	for _, vid := range []uint16{0, testVLAN, 7} {
		u := v4Frame(testPayload)
		u.Tagged, u.VID = true, vid
		want := link.Handled
		if vid != 0 {
			want = link.Pass // a link of VLAN testVLAN strips its tag before the hook
		}
		if got := fx.f.Hook(u.Build()); got != want {
			t.Errorf("VID %d: verdict %v, want %v", vid, got, want)
		}
	}
	if got := fx.f.Counters().Passed.NotIP; got != 2 {
		t.Errorf("Passed.NotIP = %d, want 2 (the frames on VLANs %d and 7)", got, testVLAN)
	}
}

func TestClassifyChecksumOffload(t *testing.T) {
	fx := newFixture(t, fixtureOptions{offload: true})
	for _, u := range []frames.UDP{v4Frame(testPayload), v6Frame(testPayload)} {
		u.MutateUDP = func(h header.UDP) { h.SetChecksum(h.Checksum() ^ 0xffff) }
		if got := fx.f.Hook(u.Build()); got != link.Handled {
			t.Errorf("%v: verdict %v, want handled", u.Dst, got)
		}
	}
	if got := fx.f.Counters().FastDelivered; got != 2 {
		t.Errorf("FastDelivered = %d, want 2: a link that verified checksums is trusted", got)
	}
}

func TestClassifyOtherTraffic(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	arp := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(arp).Encode(&header.EthernetFields{SrcAddr: frames.PeerMAC, DstAddr: header.EthernetBroadcastAddress, Type: header.ARPProtocolNumber})
	unknown := make([]byte, 60)
	header.Ethernet(unknown).Encode(&header.EthernetFields{SrcAddr: frames.PeerMAC, DstAddr: frames.StackMAC, Type: 0x88b5})
	for name, frame := range map[string][]byte{"ARP": arp, "unknown ethertype": unknown} {
		if got := fx.f.Hook(frame); got != link.Pass {
			t.Errorf("%s: verdict %v, want pass", name, got)
		}
	}
	if got := fx.f.Counters().Passed.NotIP; got != 2 {
		t.Errorf("Passed.NotIP = %d, want 2", got)
	}
}

// addAddress adds an IPv4 address to the fixture's NIC, behind the filter's
// back (no RefreshAddresses).
func (fx *fixture) addAddress(t *testing.T, a netip.Addr) netip.Addr {
	t.Helper()
	if err := fx.st.Netstack().AddProtocolAddress(fx.st.NICID(0), tcpip.ProtocolAddress{
		Protocol:          header.IPv4ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(a.As4()).WithPrefix(),
	}, tcpipstack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestClassifyNewAddress checks that an address added to the NIC after New
// is served fast once the snapshot is refreshed, and by netstack before.
func TestClassifyNewAddress(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	added := fx.addAddress(t, netip.MustParseAddr("198.51.100.3"))
	u := v4Frame(testPayload)
	u.Dst = netip.AddrPortFrom(added, rtpPort)
	if got := fx.f.Hook(u.Build()); got != link.Pass {
		t.Fatalf("before refresh: verdict %v, want pass (netstack serves it)", got)
	}
	fx.clock.Advance(fastfilter.DefaultAddressRefresh)
	if got := fx.f.Hook(u.Build()); got != link.Handled {
		t.Fatalf("after the periodic refresh: verdict %v, want handled", got)
	}
}

// TestAddressRefreshSleepsWhenIdle: with no frames for a period the
// periodic refresh stops (an idle filter wakes nobody): an address added
// during a quiet minute is not in the snapshot at its end. The first frame
// wakes the refresh, and a period later the address is served fast.
func TestAddressRefreshSleepsWhenIdle(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	fx.clock.Advance(2 * fastfilter.DefaultAddressRefresh) // the first period passes without frames
	added := fx.addAddress(t, netip.MustParseAddr("198.51.100.3"))
	fx.clock.Advance(time.Minute)
	u := v4Frame(testPayload)
	u.Dst = netip.AddrPortFrom(added, rtpPort)
	if got := fx.f.Hook(u.Build()); got != link.Pass {
		t.Fatalf("after an idle minute: verdict %v, want pass (the refresh slept)", got)
	}
	fx.clock.Advance(fastfilter.DefaultAddressRefresh)
	if got := fx.f.Hook(u.Build()); got != link.Handled {
		t.Fatalf("a period after the first frame: verdict %v, want handled", got)
	}
}

// TestRingTimestamps: with RingOptions.Timestamps a ring keeps the receive
// time, read from the filter's clock while the frame is delivered; without,
// it keeps none.
func TestRingTimestamps(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	fx.reg.Close()
	stamped := newRing(t, fastfilter.RingOptions{Timestamps: true})
	plain := newRing(t, fastfilter.RingOptions{})
	var sent time.Time
	for port, ring := range []*fastfilter.Ring{stamped, plain} {
		port := rtpPort + uint16(port)
		if _, err := fx.f.RegisterRing(port, port, ring); err != nil {
			t.Fatal(err)
		}
		fx.clock.Advance(time.Millisecond)
		if ring == stamped {
			sent = fx.clock.Now()
		}
		u := v4Frame(testPayload)
		u.Dst = netip.AddrPortFrom(frames.StackV4, port)
		if fx.f.Hook(u.Build()) != link.Handled {
			t.Fatalf("port %d: frame not handled", port)
		}
	}
	buf := make([]byte, 100)
	if _, info, err := stamped.ReadPacket(buf, past); err != nil || !info.ReceivedAt.Equal(sent) {
		t.Errorf("with Timestamps: ReceivedAt %v, %v; want %v", info.ReceivedAt, err, sent)
	}
	if _, info, err := plain.ReadPacket(buf, past); err != nil || !info.ReceivedAt.IsZero() {
		t.Errorf("without Timestamps: ReceivedAt %v, %v; want zero", info.ReceivedAt, err)
	}
}

// TestHookThroughLink sends frames through the sim endpoint's DeliverFrame:
// what the hook took shows in the filter's counters (the link counts no
// hooked frame), what it passed in the link's.
func TestHookThroughLink(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	fx.ep.DeliverFrame(v4Frame(testPayload).Build())
	u := v4Frame(testPayload)
	u.Dst = netip.AddrPortFrom(frames.StackV4, rtpPort+2)
	fx.ep.DeliverFrame(u.Build())
	c := fx.f.Counters()
	if got, want := c.FastDelivered, uint64(1); got != want {
		t.Errorf("filter FastDelivered = %d, want %d", got, want)
	}
	if got, want := c.Passed.NotRegistered, uint64(1); got != want {
		t.Errorf("filter Passed.NotRegistered = %d, want %d", got, want)
	}
	if got, want := fx.ep.Stats.RxToNetstack.Load(), uint64(1); got != want {
		t.Errorf("link RxToNetstack = %d, want %d", got, want)
	}
	if got := fx.rec.take(); len(got) != 1 || !bytes.Equal([]byte(got[0].Payload), testPayload) {
		t.Errorf("delivered %+v", got)
	}
}
