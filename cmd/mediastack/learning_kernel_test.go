package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/relay"
)

// rtpPacket is a 172-byte G.711 RTP packet of stream ssrc.
func rtpPacket(ssrc uint32, seq uint16) []byte {
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc},
		Payload: make([]byte, 160)}).Marshal()
	if err != nil {
		panic(err) // a fixed header always marshals
	}
	return b
}

// relayInfo reads relay id from the control API.
func relayInfo(t testing.TB, c *http.Client, id string) relay.RelayJSON {
	t.Helper()
	code, body := api(t, c, "GET", "/v1/relays/"+id, "")
	var r relay.RelayJSON
	if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("GET /v1/relays/%s: %d %s", id, code, body)
	}
	return r
}

// expectFrom reads one datagram on c within the state timeout and checks
// its payload and source.
func expectFrom(t testing.TB, c *net.UDPConn, want []byte, from netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(netnstest.StateTimeout)) // a hang guard
	n, src, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != string(want) || netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != from {
		t.Fatalf("%v got %d bytes from %v (%v); want %d bytes from %v", c.LocalAddr(), n, src, err, len(want), from)
	}
}

// expectNothing checks that nothing waits on c after the datagrams the
// test waited for (a stranger's socket).
func expectNothing(t testing.TB, c *net.UDPConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, src, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("%v received %d bytes from %v; want nothing", c.LocalAddr(), n, src)
	}
}

// TestSidecarResistsHijackAndFollowsRebinding: a relay made with the
// peers the signalling expects (as the ng protocol makes them from SDP),
// serve's default endpoint learning. A stranger on another host who sends
// first gets nothing and takes nothing: the caller's media reaches the
// callee and the callee's the caller. Then the caller's NAT rebinds its
// port: the relay hands the side over to the new port (same SSRC) and the
// callee's media follows it.
func TestSidecarResistsHijackAndFollowsRebinding(t *testing.T) {
	netnstest.RequireTUN(t)
	ns := netnstest.NewNamespace(t)
	_, c := sidecarIn(t, ns, "mss9")
	ns.MustIP("addr", "add", "198.51.100.3/24", "dev", "mss9")

	r := createRelay(t, c, `{"ports":[20400,20402],"peers":["198.51.100.1:32100","198.51.100.1:32102"]}`)
	a, b := netip.MustParseAddrPort("198.51.100.2:20400"), netip.MustParseAddrPort("198.51.100.2:20402")
	caller := listenUDP(t, ns, "udp4", "198.51.100.1:32100")
	callee := listenUDP(t, ns, "udp4", "198.51.100.1:32102")
	stranger := listenUDP(t, ns, "udp4", "198.51.100.3:32100")
	const callerSSRC, calleeSSRC, strangerSSRC = 0x11111111, 0x22222222, 0x33333333

	// The stranger speaks first, on the caller's side.
	if _, err := stranger.WriteToUDPAddrPort(rtpPacket(strangerSSRC, 1), a); err != nil {
		t.Fatal(err)
	}
	netnstest.WaitFor(t, netnstest.StateTimeout, "the relay counting the stranger's datagram", func() error {
		if got := relayInfo(t, c, r.ID).Sides[0].Dropped.ForeignSource; got != 1 {
			return fmt.Errorf("foreign_source drops on A: %d", got)
		}
		return nil
	})
	for seq := range uint16(20) {
		p := rtpPacket(callerSSRC, 100+seq)
		if _, err := caller.WriteToUDPAddrPort(p, a); err != nil {
			t.Fatal(err)
		}
		expectFrom(t, callee, p, b)
	}
	for seq := range uint16(5) {
		p := rtpPacket(calleeSSRC, 500+seq)
		if _, err := callee.WriteToUDPAddrPort(p, b); err != nil {
			t.Fatal(err)
		}
		expectFrom(t, caller, p, a)
	}
	expectNothing(t, stranger)

	// The caller's NAT rebinds: the same stream from another port.
	rebound := listenUDP(t, ns, "udp4", "198.51.100.1:32200")
	seq := uint16(120)
	netnstest.WaitFor(t, netnstest.StateTimeout, "the relay handing A over to the caller's new port", func() error {
		if _, err := rebound.WriteToUDPAddrPort(rtpPacket(callerSSRC, seq), a); err != nil {
			return err
		}
		seq++
		if peer := relayInfo(t, c, r.ID).Peers[0]; peer != "198.51.100.1:32200" {
			return fmt.Errorf("A's peer is %q", peer)
		}
		return nil
	})
	p := rtpPacket(calleeSSRC, 600)
	if _, err := callee.WriteToUDPAddrPort(p, b); err != nil {
		t.Fatal(err)
	}
	expectFrom(t, rebound, p, a)
	expectNothing(t, stranger)
}

// TestSidecarTimesOutSilentRelay: a relay made through the API that never
// carries media is deleted after --timeout, and its ports are free again.
func TestSidecarTimesOutSilentRelay(t *testing.T) {
	netnstest.RequireTUN(t)
	ns := netnstest.NewNamespace(t)
	_, c := sidecarIn(t, ns, "mssa", "--timeout", "2s")
	r := createRelay(t, c, `{"ports":[20500,20502],"peers":["198.51.100.1:32100","198.51.100.1:32102"]}`)
	netnstest.WaitFor(t, 30*time.Second, "the silent relay timing out", func() error {
		if code, body := api(t, c, "GET", "/v1/relays/"+r.ID, ""); code != http.StatusNotFound {
			return fmt.Errorf("GET /v1/relays/%s: %d %s", r.ID, code, body)
		}
		return nil
	})
	createRelay(t, c, `{"ports":[20500,20502]}`)
}
