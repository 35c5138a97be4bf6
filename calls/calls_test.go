package calls_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/calls"
	"github.com/mediastack/mediastack/calls/callstest"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/relay"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// sdp is an SDP from host 1 (A) or 3 (B) with one audio m= line per port.
func sdp(host string, version int, ports ...string) []byte {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 " + itoa(version) + " IN IP4 198.51.100." + host + "\r\ns=-\r\nc=IN IP4 198.51.100." + host + "\r\nt=0 0\r\n")
	for _, p := range ports {
		b.WriteString("m=audio " + p + " RTP/AVP 0\r\n")
	}
	return []byte(b.String())
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func offer(t *testing.T, c *calls.Registry, p calls.Params) string {
	t.Helper()
	res, err := c.Offer(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(res.SDP)
}

func answer(t *testing.T, c *calls.Registry, p calls.Params) string {
	t.Helper()
	res, err := c.Answer(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(res.SDP)
}

// mLines returns the m= lines and a=rtcp lines of an SDP.
func mLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\r\n") {
		if strings.HasPrefix(l, "m=") || strings.HasPrefix(l, "a=rtcp") || strings.HasPrefix(l, "o=") {
			out = append(out, l)
		}
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// TestReOffer: a re-INVITE (same call-id and tags, from either party)
// keeps the relays and their ports, updates the peers, adds relays for
// added m= lines and frees those of removed or rejected ones; o= goes up
// only when what a party is sent changes.
func TestReOffer(t *testing.T) {
	f := callstest.New(t, callstest.Options{})
	c := f.Calls
	p := calls.Params{CallID: "c", FromTag: "a", SDP: sdp("1", 1, "6000")}
	equal(t, "offer", mLines(offer(t, c, p)), []string{"o=- 1 1 IN IP4 198.51.100.1", "m=audio 30002 RTP/AVP 0", "a=rtcp:30003"})
	equal(t, "answer", mLines(answer(t, c, calls.Params{CallID: "c", FromTag: "a", ToTag: "b", SDP: sdp("3", 7, "7000")})),
		[]string{"o=- 1 7 IN IP4 198.51.100.3", "m=audio 30000 RTP/AVP 0", "a=rtcp:30001"})

	// The same offer again (a retransmission the proxy did not cache):
	// same ports, same version.
	equal(t, "same re-offer", mLines(offer(t, c, calls.Params{CallID: "c", FromTag: "a", ToTag: "b", SDP: sdp("1", 1, "6000")})),
		[]string{"o=- 1 1 IN IP4 198.51.100.1", "m=audio 30002 RTP/AVP 0", "a=rtcp:30003"})
	if n := f.Held(); n != 1 {
		t.Fatalf("%d relays after a re-offer, want 1", n)
	}
	// A adds a video... an audio m= line and moves its port: the first
	// keeps its relay, the second gets one; B is sent version 2.
	equal(t, "re-offer with two m= lines", mLines(offer(t, c, calls.Params{CallID: "c", FromTag: "a", ToTag: "b", SDP: sdp("1", 2, "6010", "6020")})),
		[]string{"o=- 1 2 IN IP4 198.51.100.1", "m=audio 30002 RTP/AVP 0", "a=rtcp:30003", "m=audio 30006 RTP/AVP 0", "a=rtcp:30007"})
	info, err := c.Query("c")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Parties[0].Medias[0].RTP.Advertised.String(); got != "198.51.100.1:6010" {
		t.Errorf("A's peer after the re-offer: %s", got)
	}
	equal(t, "answer to it", mLines(answer(t, c, calls.Params{CallID: "c", FromTag: "a", ToTag: "b", SDP: sdp("3", 8, "7000", "7010")})),
		[]string{"o=- 1 8 IN IP4 198.51.100.3", "m=audio 30000 RTP/AVP 0", "a=rtcp:30001", "m=audio 30004 RTP/AVP 0", "a=rtcp:30005"})
	// B re-INVITEs (from-tag b, to-tag a) rejecting the second line: A is
	// sent B's SDP on A's side's ports, the second relay is gone.
	equal(t, "re-offer from B", mLines(offer(t, c, calls.Params{CallID: "c", FromTag: "b", ToTag: "a", SDP: sdp("3", 9, "7000", "0")})),
		[]string{"o=- 1 9 IN IP4 198.51.100.3", "m=audio 30000 RTP/AVP 0", "a=rtcp:30001", "m=audio 0 RTP/AVP 0"})
	if n := f.Held(); n != 1 {
		t.Errorf("%d relays after the second m= line was rejected, want 1", n)
	}
	equal(t, "A's answer to B", mLines(answer(t, c, calls.Params{CallID: "c", FromTag: "b", ToTag: "a", SDP: sdp("1", 3, "6010", "0")})),
		[]string{"o=- 1 3 IN IP4 198.51.100.1", "m=audio 30002 RTP/AVP 0", "a=rtcp:30003", "m=audio 0 RTP/AVP 0"})
	if _, err := c.Delete("c", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if n := f.Held(); n != 0 {
		t.Errorf("%d relays after delete", n)
	}
}

// TestLimits: an SDP with 10,000 m= lines, an offer beyond MaxCalls, and
// an offer that runs out of ports fail and leave nothing behind.
func TestLimits(t *testing.T) {
	// Two port pairs per m= line: 30000-30011 holds three lines.
	f := callstest.New(t, callstest.Options{PortMax: 30011, Calls: calls.Options{MaxCalls: 2}})
	c := f.Calls
	many := make([]string, 10000)
	for i := range many {
		many[i] = "6000"
	}
	if _, err := c.Offer(calls.Params{CallID: "many", FromTag: "a", SDP: sdp("1", 1, many...)}); !errors.Is(err, calls.ErrTooManyMedia) {
		t.Errorf("10,000 m= lines: %v, want ErrTooManyMedia", err)
	}
	if _, err := c.Offer(calls.Params{CallID: "ports", FromTag: "a", SDP: sdp("1", 1, "6000", "6002", "6004", "6006")}); !errors.Is(err, calls.ErrNoPorts) {
		t.Errorf("4 m= lines on 3 lines' ports: %v, want ErrNoPorts", err)
	}
	if n, st := f.Held(), c.Stats(); n != 0 || st.Calls != 0 {
		t.Errorf("after failed offers: %d relays, %d calls", n, st.Calls)
	}
	offer(t, c, calls.Params{CallID: "1", FromTag: "a", SDP: sdp("1", 1, "6000")})
	offer(t, c, calls.Params{CallID: "2", FromTag: "a", SDP: sdp("1", 1, "6000")})
	if _, err := c.Offer(calls.Params{CallID: "3", FromTag: "a", SDP: sdp("1", 1, "6000")}); !errors.Is(err, calls.ErrTooManyCalls) {
		t.Errorf("third call with MaxCalls 2: %v, want ErrTooManyCalls", err)
	}
	// A re-offer with more lines than ports: refused, the call keeps its
	// relay.
	if _, err := c.Offer(calls.Params{CallID: "1", FromTag: "a", SDP: sdp("1", 2, "6000", "6002", "6004")}); !errors.Is(err, calls.ErrNoPorts) {
		t.Errorf("re-offer beyond the ports: %v, want ErrNoPorts", err)
	}
	if n := f.Held(); n != 2 {
		t.Errorf("%d relays, want the two calls' 2", n)
	}
	if st := c.Stats(); st.Rejected != 3 {
		t.Errorf("rejected %d, want 3", st.Rejected)
	}
}

// TestTimeoutEndsCall: a call whose relays time out (no media) is removed.
func TestTimeoutEndsCall(t *testing.T) {
	f := callstest.New(t, callstest.Options{Relay: relay.Options{Timeout: 10 * time.Second}})
	c := f.Calls
	offer(t, c, calls.Params{CallID: "c", FromTag: "a", SDP: sdp("1", 1, "6000", "6002")})
	answer(t, c, calls.Params{CallID: "c", FromTag: "a", ToTag: "b", SDP: sdp("3", 1, "7000", "7002")})
	f.LAN.Run(5 * time.Second)
	if st := c.Stats(); st.Calls != 1 {
		t.Fatalf("call gone after 5 s: %+v", st)
	}
	f.LAN.Run(10 * time.Second)
	if st := c.Stats(); st.Calls != 0 || st.TimedOut != 1 {
		t.Errorf("after 15 s without media: %+v, want the call timed out", st)
	}
	if n := f.Held(); n != 0 {
		t.Errorf("%d relays left", n)
	}
	if _, err := c.Query("c"); !errors.Is(err, calls.ErrUnknownCall) {
		t.Errorf("query of the timed-out call: %v", err)
	}
}

// TestTags: requests must name the call's tags.
func TestTags(t *testing.T) {
	f := callstest.New(t, callstest.Options{})
	c := f.Calls
	offer(t, c, calls.Params{CallID: "c", FromTag: "a", SDP: sdp("1", 1, "6000")})
	if _, err := c.Answer(calls.Params{CallID: "c", FromTag: "x", ToTag: "b", SDP: sdp("3", 1, "7000")}); !errors.Is(err, calls.ErrTags) {
		t.Errorf("answer naming another offerer: %v", err)
	}
	if _, err := c.Offer(calls.Params{CallID: "c", FromTag: "x", SDP: sdp("1", 1, "6000")}); !errors.Is(err, calls.ErrTags) {
		t.Errorf("offer from a third tag: %v", err)
	}
	answer(t, c, calls.Params{CallID: "c", FromTag: "a", ToTag: "b", SDP: sdp("3", 1, "7000")})
	// Another fork answers: it takes over the answerer's side.
	answer(t, c, calls.Params{CallID: "c", FromTag: "a", ToTag: "b2", SDP: sdp("3", 1, "7002")})
	info, _ := c.Query("c")
	if got := info.Parties[1].Tag; got != "b2" {
		t.Errorf("answerer tag %q after a second fork's answer", got)
	}
	if _, err := c.Delete("c", "a", "nope"); !errors.Is(err, calls.ErrTags) {
		t.Errorf("delete with a wrong to-tag: %v", err)
	}
	if _, err := c.Delete("c", "b2", ""); err != nil {
		t.Errorf("delete by the answerer's tag: %v", err)
	}
	if _, err := c.Delete("c", "", ""); !errors.Is(err, calls.ErrUnknownCall) {
		t.Errorf("second delete: %v", err)
	}
}

// TestRTCPMux follows rtpengine's rtcp-mux rules (rtpengine-ng.md §3.2)
// through an offer and its answer: what the answerer is offered, what the
// offerer is answered, and what the relay applies.
func TestRTCPMux(t *testing.T) {
	muxSDP := func(host, port string, mux bool) []byte {
		s := string(sdp(host, 1, port))
		if mux {
			s += "a=rtcp-mux\r\n"
		}
		return []byte(s)
	}
	for _, tc := range []struct {
		name                 string
		offered, answered    bool
		req                  calls.RTCPMux
		wantOffer, wantReply []string
		wantRelay            [2]bool
	}{
		{"not offered", false, false, calls.RTCPMux{}, []string{"a=rtcp:30003"}, []string{"a=rtcp:30001"}, [2]bool{}},
		{"offered, accepted", true, true, calls.RTCPMux{}, []string{"a=rtcp:30003", "a=rtcp-mux"}, []string{"a=rtcp:30000", "a=rtcp-mux"}, [2]bool{true, true}},
		{"offered, refused", true, false, calls.RTCPMux{}, []string{"a=rtcp:30003", "a=rtcp-mux"}, []string{"a=rtcp:30001"}, [2]bool{}},
		{"demux", true, false, calls.RTCPMux{Demux: true}, []string{"a=rtcp:30003"}, []string{"a=rtcp:30000", "a=rtcp-mux"}, [2]bool{true, false}},
		{"offer", false, true, calls.RTCPMux{Offer: true}, []string{"a=rtcp:30003", "a=rtcp-mux"}, []string{"a=rtcp:30001"}, [2]bool{false, true}},
		{"require", false, true, calls.RTCPMux{Require: true}, []string{"a=rtcp:30002", "a=rtcp-mux"}, []string{"a=rtcp:30001"}, [2]bool{false, true}},
		{"accept", true, false, calls.RTCPMux{Accept: true}, []string{"a=rtcp:30003", "a=rtcp-mux"}, []string{"a=rtcp:30000", "a=rtcp-mux"}, [2]bool{true, false}},
		{"reject", true, true, calls.RTCPMux{Reject: true}, []string{"a=rtcp:30003", "a=rtcp-mux"}, []string{"a=rtcp:30001"}, [2]bool{false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := callstest.New(t, callstest.Options{})
			o := offer(t, f.Calls, calls.Params{CallID: "c", FromTag: "a", SDP: muxSDP("1", "6000", tc.offered), RTCPMux: tc.req})
			equal(t, "offer", rtcpLines(o), tc.wantOffer)
			a := answer(t, f.Calls, calls.Params{CallID: "c", FromTag: "a", ToTag: "b", SDP: muxSDP("3", "7000", tc.answered)})
			equal(t, "answer", rtcpLines(a), tc.wantReply)
			info := f.Relays.List()[0]
			if got := [2]bool{info.Sides[0].Mux, info.Sides[1].Mux}; got != tc.wantRelay {
				t.Errorf("relay mux %v, want %v", got, tc.wantRelay)
			}
		})
	}
}

func rtcpLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\r\n") {
		if strings.HasPrefix(l, "a=rtcp") {
			out = append(out, l)
		}
	}
	return out
}

// TestAddresses: with SIPSourceAddress the SIP message's source replaces
// the SDP's address as the expected peer; an address family the registry
// has no address of is refused before anything is made.
func TestAddresses(t *testing.T) {
	f := callstest.New(t, callstest.Options{Calls: calls.Options{Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.2")}}})
	c := f.Calls
	offer(t, c, calls.Params{CallID: "c", FromTag: "a", SDP: sdp("1", 1, "6000"),
		SIPSourceAddress: true, ReceivedFrom: netip.MustParseAddr("203.0.113.9")})
	info, err := c.Query("c")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Parties[0].Medias[0].RTP.Endpoint.String(); got != "203.0.113.9:6000" {
		t.Errorf("expected peer %s, want the SIP source with the SDP's port", got)
	}
	fam, _ := calls.ParseFamily("IP6")
	if _, err := c.Offer(calls.Params{CallID: "d", FromTag: "a", SDP: sdp("1", 1, "6000"), Family: fam}); !errors.Is(err, calls.ErrFamily) {
		t.Errorf("IP6 without an IPv6 media address: %v", err)
	}
	if n := f.Held(); n != 1 {
		t.Errorf("%d relays, want the first call's", n)
	}
}
