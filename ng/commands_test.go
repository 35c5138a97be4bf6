package ng_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/calls/callstest"
	"github.com/mediastack/mediastack/internal/bencode"
	"github.com/mediastack/mediastack/internal/simlan"
)

const offerSDP = "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
const answerSDP = "v=0\r\no=- 2 2 IN IP4 198.51.100.3\r\ns=-\r\nc=IN IP4 198.51.100.3\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"

func TestPing(t *testing.T) {
	s := newServer(t, callstest.Options{})
	// Exactly the bytes of rtpengine-ng.md §1.1.
	got := s.srv.Handle(netip.Addr{}, []byte("5323_1 d7:command4:pinge"))
	if string(got) != "5323_1 d6:result4:ponge" {
		t.Errorf("ping reply %q", got)
	}
}

// TestKamailioOffer: the exact offer of rtpengine-ng.md §2.2, keys
// unsorted, gets an SDP pointing at R.
func TestKamailioOffer(t *testing.T) {
	s := newServer(t, callstest.Options{})
	req := "d8:supportsl10:load limite3:sdp87:v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n" +
		"3:ICE6:remove7:replacel6:origin18:session-connectione18:transport-protocol7:RTP/AVP7:call-id14:a84b4c76e66710" +
		"13:received-froml3:IP49:127.0.0.1e8:from-tag10:19283017747:command5:offere"
	d := s.raw(t, "1_4242_0", []byte(req))
	want := bencode.Dict{"result": "ok", "sdp": "v=0\r\no=- 1 1 IN IP4 198.51.100.2\r\ns=-\r\nc=IN IP4 198.51.100.2\r\nt=0 0\r\n" +
		"m=audio 30002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtcp:30003\r\n"}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("offer reply (-want +got):\n%s", diff)
	}
}

// TestRetransmission: a request sent again with the same cookie gets the
// same reply, byte for byte, and is not run again; after the cache's 30 to
// 60 s it is a new request.
func TestRetransmission(t *testing.T) {
	s := newServer(t, callstest.Options{})
	req, _ := bencode.Marshal(kamailio("offer", "c1", "a", "", offerSDP, ""))
	first := s.srv.Handle(callstest.ProxyAddr, append([]byte("k1 "), req...))
	again := s.srv.Handle(callstest.ProxyAddr, append([]byte("k1 "), req...))
	if string(first) != string(again) {
		t.Errorf("retransmission got %q, first %q", again, first)
	}
	// Same cookie, another body: still the cached reply (rtpengine keys on
	// the cookie only).
	ping := s.srv.Handle(callstest.ProxyAddr, []byte("k1 d7:command4:pinge"))
	if string(ping) != string(first) {
		t.Errorf("same cookie, other body: %q", ping)
	}
	if st := s.Calls.Stats(); st.Offers != 1 || st.Calls != 1 {
		t.Errorf("after a retransmitted offer: %+v, want one offer, one call", st)
	}
	if n := s.Relays.Stats().Relays; n != 1 {
		t.Errorf("%d relays, want 1", n)
	}
	s.LAN.Run(61 * time.Second)
	if got := s.srv.Handle(callstest.ProxyAddr, []byte("k1 d7:command4:pinge")); string(got) != "k1 d6:result4:ponge" {
		t.Errorf("after 61 s the cookie is new: got %q", got)
	}
}

// TestOfferAnswerQueryDelete: a call through the relay: A and B send RTP
// and RTCP to the addresses in the SDPs they got; query counts it,
// delete returns the final statistics and frees the ports.
func TestOfferAnswerQueryDelete(t *testing.T) {
	s := newServer(t, callstest.Options{})
	offer := s.ok(t, kamailio("offer", "call-1", "a-tag", "", offerSDP, "replace-origin replace-session-connection"))
	answer := s.ok(t, kamailio("answer", "call-1", "a-tag", "b-tag", answerSDP, "replace-origin replace-session-connection"))
	toB := sdpPeer(t, offer["sdp"].(string))  // where B sends
	toA := sdpPeer(t, answer["sdp"].(string)) // where A sends
	a := simlan.Open(t, s.A.Media, 6000)
	aRTCP := simlan.Open(t, s.A.Media, 6001)
	b := simlan.Open(t, s.B.Media, 7000)
	for i := range 10 {
		send(t, a, toA, rtp(1, uint16(i), 0xa))
		send(t, b, toB, rtp(0, uint16(i), 0xb))
		s.LAN.Run(20 * time.Millisecond)
	}
	send(t, aRTCP, netip.AddrPortFrom(toA.Addr(), toA.Port()+1), rr(0xa))
	s.LAN.Run(100 * time.Millisecond)
	if got := len(simlan.Drain(t, b)); got != 10 {
		t.Errorf("B received %d RTP packets, want 10", got)
	}
	if got := len(simlan.Drain(t, a)); got != 10 {
		t.Errorf("A received %d RTP packets, want 10", got)
	}

	q := s.ok(t, bencode.Dict{"command": "query", "call-id": "call-1"})
	totals := q["totals"].(bencode.Dict)
	if diff := cmp.Diff(bencode.Dict{
		"RTP":  bencode.Dict{"packets": int64(20), "bytes": int64(20 * 172), "errors": int64(0)},
		"RTCP": bencode.Dict{"packets": int64(1), "bytes": int64(32), "errors": int64(0)},
	}, totals); diff != "" {
		t.Errorf("query totals (-want +got):\n%s", diff)
	}
	tags := q["tags"].(bencode.Dict)
	aTag := tags["a-tag"].(bencode.Dict)
	media := aTag["medias"].(bencode.List)[0].(bencode.Dict)
	rtpStream := media["streams"].(bencode.List)[0].(bencode.Dict)
	wantStream := bencode.Dict{
		"local port": int64(toA.Port()), "local address": "198.51.100.2", "family": "IPv4",
		"endpoint":            bencode.Dict{"family": "IPv4", "address": "198.51.100.1", "port": int64(6000)},
		"advertised endpoint": bencode.Dict{"family": "IPv4", "address": "198.51.100.1", "port": int64(6000)},
		"last packet":         rtpStream["last packet"],
		"flags":               bencode.List{"RTP", "filled", "confirmed"},
		"SSRC":                int64(0xa),
		"stats":               bencode.Dict{"packets": int64(10), "bytes": int64(1720), "errors": int64(0)},
	}
	if diff := cmp.Diff(wantStream, rtpStream); diff != "" {
		t.Errorf("a-tag's RTP stream (-want +got):\n%s", diff)
	}
	if got := aTag["subscriptions"]; !cmp.Equal(got, bencode.List{bencode.Dict{"tag": "b-tag", "type": "offer/answer"}}) {
		t.Errorf("subscriptions %v", got)
	}

	del := s.ok(t, bencode.Dict{"command": "delete", "call-id": "call-1", "from-tag": "a-tag"})
	if diff := cmp.Diff(totals, del["totals"]); diff != "" {
		t.Errorf("delete's totals differ from the query's (-query +delete):\n%s", diff)
	}
	if n := s.Relays.Stats().Relays; n != 0 {
		t.Errorf("%d relays after delete", n)
	}
	if d := s.do(t, bencode.Dict{"command": "query", "call-id": "call-1"}); d["error-reason"] != "Unknown call-id" {
		t.Errorf("query after delete: %v", d)
	}
}

func sdpPeer(t *testing.T, sdp string) netip.AddrPort {
	t.Helper()
	var addr string
	var port int
	for _, l := range strings.Split(sdp, "\r\n") {
		if a, ok := strings.CutPrefix(l, "c=IN IP4 "); ok {
			addr = a
		}
		if m, ok := strings.CutPrefix(l, "m=audio "); ok {
			fmt.Sscan(m, &port)
		}
	}
	return netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port))
}

// rtp is a 172-byte PCMU packet (12 header + 160).
func rtp(pt byte, seq uint16, ssrc uint32) string {
	b := make([]byte, 172)
	b[0], b[1] = 0x80, pt
	b[2], b[3] = byte(seq>>8), byte(seq)
	ts := uint32(seq) * 160
	b[4], b[5], b[6], b[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
	b[8], b[9], b[10], b[11] = byte(ssrc>>24), byte(ssrc>>16), byte(ssrc>>8), byte(ssrc)
	return string(b)
}

// rr is a 32-byte RTCP receiver report with one block.
func rr(ssrc uint32) string {
	b := make([]byte, 32)
	b[0], b[1], b[3] = 0x81, 201, 7
	b[4], b[5], b[6], b[7] = byte(ssrc>>24), byte(ssrc>>16), byte(ssrc>>8), byte(ssrc)
	return string(b)
}

func send(t *testing.T, p interface {
	WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error)
}, to netip.AddrPort, payload string) {
	t.Helper()
	if _, err := p.WriteToUDPAddrPort([]byte(payload), to); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput: what is not a valid request gets an error reply (or, with
// no cookie, none) and leaves nothing behind.
func TestBadInput(t *testing.T) {
	s := newServer(t, callstest.Options{})
	head := "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
	// 10,000 m= lines do not fit a datagram (the bencode limit refuses
	// them); 1,000 do, and the call's limit refuses them.
	media10000 := head + strings.Repeat("m=audio 6000 RTP/AVP 0\r\n", 10000)
	media1000 := head + strings.Repeat("m=audio 6000 RTP/AVP 0\r\n", 1000)
	noMedia := "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name, body, reason string
	}{
		{"truncated", "d7:command5:offer3:sdp200:v=0", "Could not decode dictionary: bencode: truncated at byte 26: a 200-byte string with 3 bytes left"},
		{"not bencode", "hello", `Could not decode dictionary: bencode: malformed at byte 0: 'h' does not start a value`},
		{"not a dictionary", "l4:pinge", "Could not decode dictionary: the body is not a dictionary"},
		{"JSON", `{"command":"ping"}`, "JSON requests are not supported; send bencode"},
		{"no command", "d7:call-id1:xe", `Dictionary contains no key "command"`},
		{"command not a string", "d7:commandi1ee", `Dictionary contains no key "command"`},
		{"unknown command", "d7:command5:dancee", "Unrecognized command"},
		{"call-id an integer", enc(bencode.Dict{"command": "offer", "call-id": 5, "from-tag": "a", "sdp": offerSDP}), "call-id must be a string, not an integer"},
		{"flags a dictionary", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": offerSDP, "flags": bencode.Dict{}}), "flags must be a list of strings, not a dictionary"},
		{"replace with an integer", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": offerSDP, "replace": bencode.List{1}}), "replace must be a list of strings, not with an integer"},
		{"no sdp", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a"}), "calls: missing parameter: sdp"},
		{"no from-tag", enc(bencode.Dict{"command": "offer", "call-id": "x", "sdp": offerSDP}), "calls: missing parameter: from-tag"},
		{"sdp not SDP", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": "hello"}), "calls: bad SDP: sdp: syntax error at pos 1: \"e\""},
		{"sdp without media", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": noMedia}), "calls: SDP has no media"},
		{"10000 m= lines", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": media10000}), "Could not decode dictionary: bencode: limit exceeded: a value longer than 65535 bytes"},
		{"1000 m= lines", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": media1000}), "calls: too many media sections: 1000 media sections, at most 32 per call"},
		{"bad address family", enc(bencode.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": offerSDP, "address family": "IPX"}), `address family "IPX" is neither IP4 nor IP6`},
		{"answer to no call", enc(kamailio("answer", "nope", "a", "b", answerSDP, "")), "Unknown call-id"},
		{"query of no call", enc(bencode.Dict{"command": "query", "call-id": "nope"}), "Unknown call-id"},
		{"query without call-id", enc(bencode.Dict{"command": "query"}), "No call-id in message"},
		{"delete of no call, fatal", enc(bencode.Dict{"command": "delete", "call-id": "nope", "flags": bencode.List{"fatal"}}), "Call-ID not found or tags didn't match"},
		{"negative list limit", enc(bencode.Dict{"command": "list", "limit": -1}), "invalid limit, must be >= 0"},
		{"list limit not a number", enc(bencode.Dict{"command": "list", "limit": "ten"}), "limit must be an integer, not a string"},
	} {
		d := s.raw(t, strings.ReplaceAll(tc.name, " ", "_"), []byte(tc.body))
		want := bencode.Dict{"result": "error", "error-reason": tc.reason}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if n := s.Relays.Stats().Relays; n != 0 {
		t.Errorf("%d relays left after bad requests", n)
	}
	if st := s.Calls.Stats(); st.Calls != 0 {
		t.Errorf("%d calls left after bad requests", st.Calls)
	}
	for _, d := range []string{"nocookie", " d7:command4:pinge", ""} {
		if got := s.srv.Handle(netip.Addr{}, []byte(d)); got != nil {
			t.Errorf("datagram %q without a cookie got reply %q", d, got)
		}
	}
	// Delete of an unknown call is ok, with rtpengine's warning, as
	// Kamailio's rtpengine_delete() needs.
	if diff := cmp.Diff(bencode.Dict{"result": "ok", "warning": "Call-ID not found or tags didn't match"},
		s.do(t, bencode.Dict{"command": "delete", "call-id": "nope", "from-tag": "x"})); diff != "" {
		t.Errorf("delete of an unknown call (-want +got):\n%s", diff)
	}
}

func enc(d bencode.Dict) string {
	b, err := bencode.Marshal(d)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestListAndStatistics: list gives call-ids, oldest first, up to limit;
// statistics counts sessions and commands.
func TestListAndStatistics(t *testing.T) {
	s := newServer(t, callstest.Options{})
	for i := range 3 {
		s.ok(t, kamailio("offer", fmt.Sprintf("call-%d", i), "a", "", offerSDP, ""))
		s.LAN.Run(time.Millisecond)
	}
	if diff := cmp.Diff(bencode.Dict{"result": "ok", "calls": bencode.List{"call-0", "call-1"}},
		s.do(t, bencode.Dict{"command": "list", "limit": 2})); diff != "" {
		t.Errorf("list limit 2 (-want +got):\n%s", diff)
	}
	if got := s.ok(t, bencode.Dict{"command": "list"})["calls"]; len(got.(bencode.List)) != 3 {
		t.Errorf("list: %v", got)
	}
	s.ok(t, bencode.Dict{"command": "delete", "call-id": "call-0"})
	st := s.ok(t, bencode.Dict{"command": "statistics"})["statistics"].(bencode.Dict)
	cur := st["currentstatistics"].(bencode.Dict)
	tot := st["totalstatistics"].(bencode.Dict)
	ctl := st["controlstatistics"].(bencode.Dict)
	if cur["sessionsown"] != int64(2) || tot["managedsessions"] != int64(3) || tot["regularterminatedsessions"] != int64(1) {
		t.Errorf("sessions: current %v, total %v", cur, tot)
	}
	if ctl["totaloffercount"] != int64(3) || ctl["totallistcount"] != int64(2) || ctl["totaldeletecount"] != int64(1) {
		t.Errorf("control statistics %v", ctl)
	}
	proxies := ctl["proxies"].(bencode.List)
	if len(proxies) != 1 || proxies[0].(bencode.Dict)["proxy"] != callstest.ProxyAddr.String() {
		t.Errorf("proxies %v", proxies)
	}
}

// TestDuplicateInFlight: copies of a request arriving together run it
// once; every copy gets the same reply.
func TestDuplicateInFlight(t *testing.T) {
	s := newServer(t, callstest.Options{})
	req, _ := bencode.Marshal(kamailio("offer", "c1", "a", "", offerSDP, ""))
	datagram := append([]byte("dup "), req...)
	const copies = 8
	replies := make(chan string, copies)
	for range copies {
		go func() { replies <- string(s.srv.Handle(callstest.ProxyAddr, datagram)) }()
	}
	first := <-replies
	for range copies - 1 {
		if got := <-replies; got != first {
			t.Errorf("copies got different replies:\n%q\n%q", first, got)
		}
	}
	if st := s.Calls.Stats(); st.Offers != 1 {
		t.Errorf("%d offers run for %d copies, want 1", st.Offers, copies)
	}
}
