package fastfilter_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/stack"
)

// addPeer adds a plain netstack stack to the fixture's LAN (host
// frames.Peer) and returns its dual-stack UDP socket on peerPort: the
// sender of the end-to-end tests.
func (fx *fixture) addPeer(t *testing.T) tcpip.Endpoint {
	t.Helper()
	return fx.lan.AddHost(simlan.HostOptions{N: frames.Peer}).BindUDP(t, peerPort)
}

func send(t *testing.T, ep tcpip.Endpoint, to netip.AddrPort, payload []byte) {
	t.Helper()
	fa := stack.FullAddress(to)
	if _, err := ep.Write(bytes.NewReader(payload), tcpip.WriteOptions{To: &fa}); err != nil {
		t.Fatalf("sending %d bytes to %v: %s", len(payload), to, err)
	}
}

func payloadOf(tag string, n int) []byte {
	p := bytes.Repeat([]byte{'.'}, n)
	copy(p, tag)
	return p
}

// TestEndToEndSim: a peer sends with a plain netstack UDP socket; the
// receiver has a ring on a registered RTP/RTCP pair. Plain datagrams arrive
// through the fast lane, fragmented ones (payload over the MTU) through
// netstack, all in the same ring; the counters say which lane each took. The
// registration's netstack endpoint then answers the peer over IPv4 and IPv6.
func TestEndToEndSim(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	p := fx.addPeer(t)
	fx.reg.Close()
	ring := newRing(t, fastfilter.RingOptions{})
	reg, err := fx.f.Register(rtpPort, rtpPort+1, ring.Receive)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	rtp4, rtcp4 := netip.AddrPortFrom(frames.StackV4, rtpPort), netip.AddrPortFrom(frames.StackV4, rtpPort+1)
	rtp6, rtcp6 := netip.AddrPortFrom(frames.StackV6, rtpPort), netip.AddrPortFrom(frames.StackV6, rtpPort+1)
	type sent struct {
		to          netip.AddrPort
		payload     []byte
		viaNetstack bool
	}
	var want []sent
	for i := range 5 {
		want = append(want,
			sent{rtp4, payloadOf(fmt.Sprintf("v4 rtp %d", i), 172), false},
			sent{rtp6, payloadOf(fmt.Sprintf("v6 rtp %d", i), 172), false})
	}
	want = append(want,
		sent{rtcp4, payloadOf("v4 rtcp", 60), false},
		sent{rtcp4, payloadOf("v4 big", 3000), true},
		sent{rtcp6, payloadOf("v6 big", 3000), true},
		sent{rtcp6, payloadOf("v6 rtcp", 60), false})
	for _, s := range want {
		send(t, p, s.to, s.payload)
		fx.lan.Run(time.Millisecond)
	}
	if !fx.lan.Network.RunUntil(func() bool { return ring.Len() == len(want) }, time.Millisecond, time.Second) {
		t.Fatalf("%d of %d datagrams arrived; ring %+v, counters %+v", ring.Len(), len(want), ring.Stats(), fx.f.Counters())
	}

	type got struct {
		payload     string
		to          netip.AddrPort
		from        netip.AddrPort
		viaNetstack bool
	}
	var gots, wants []got
	buf := make([]byte, 4000)
	for range want {
		n, info, err := ring.ReadPacket(buf, past)
		if err != nil {
			t.Fatal(err)
		}
		gots = append(gots, got{string(buf[:n]), info.Dst, info.Src, info.ViaNetstack})
	}
	for _, s := range want {
		from := netip.AddrPortFrom(frames.PeerV4, peerPort)
		if s.to.Addr().Is6() {
			from = netip.AddrPortFrom(frames.PeerV6, peerPort)
		}
		wants = append(wants, got{string(s.payload), s.to, from, s.viaNetstack})
	}
	byPayload := func(a, b got) int { return bytes.Compare([]byte(a.payload), []byte(b.payload)) }
	slices.SortFunc(gots, byPayload)
	slices.SortFunc(wants, byPayload)
	if !slices.Equal(gots, wants) {
		t.Errorf("ring contents differ from what was sent:\n got  %+v\n want %+v", gots, wants)
	}

	rtp, rtcp := reg.PortCounters(rtpPort), reg.PortCounters(rtpPort+1)
	if rtp.FastDelivered != 10 || rtp.NetstackDelivered != 0 {
		t.Errorf("RTP port counters %+v: want 10 fast, 0 via netstack", rtp)
	}
	if rtcp.FastDelivered != 2 || rtcp.NetstackDelivered != 2 || rtcp.Passed.Fragment != 1 {
		t.Errorf("RTCP port counters %+v: want 2 fast, 2 via netstack, 1 first IPv4 fragment seen", rtcp)
	}
	total := fx.f.Counters()
	if total.Passed.Fragment != 6 || total.Dropped.Total() != 0 {
		t.Errorf("filter counters %+v: want 6 fragments passed (3 per 3000-byte datagram), no drops", total)
	}
	t.Logf("filter counters: %+v", total)

	// The fallback sender: the registration's endpoint answers from the
	// registered port, to an IPv4 (4-byte) and an IPv6 address.
	for _, to := range []netip.AddrPort{netip.AddrPortFrom(frames.PeerV4, peerPort), netip.AddrPortFrom(frames.PeerV6, peerPort)} {
		send(t, reg.NetstackEndpoint(rtpPort), to, []byte("answer to "+to.Addr().String()))
	}
	var answers []string
	fx.lan.Network.RunUntil(func() bool {
		for {
			var b bytes.Buffer
			res, err := p.Read(&b, tcpip.ReadOptions{NeedRemoteAddr: true})
			if err != nil {
				break
			}
			answers = append(answers, fmt.Sprintf("%s from port %d", b.String(), res.RemoteAddr.Port))
		}
		return len(answers) == 2
	}, time.Millisecond, time.Second)
	slices.Sort(answers)
	if wantAnswers := []string{"answer to 198.51.100.1 from port 20000", "answer to 2001:db8::1 from port 20000"}; !slices.Equal(answers, wantAnswers) {
		t.Errorf("peer received %q, want %q", answers, wantAnswers)
	}
}
