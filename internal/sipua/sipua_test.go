package sipua

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestParseKeepsWhatMarshalWrites(t *testing.T) {
	m := &Message{Method: "INVITE", URI: "sip:bob@198.51.100.1:5080", Body: []byte("v=0\r\n")}
	m.Add("Via", "SIP/2.0/UDP 198.51.100.1:5070;branch=z9hG4bK1;rport")
	m.Add("Record-Route", "<sip:198.51.100.1;lr>")
	m.Add("CSeq", "1 INVITE")
	got, err := Parse(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	m.Add("Content-Length", "5")
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("parsed back (-want +got):\n%s", diff)
	}
	if n, method := got.CSeq(); n != 1 || method != "INVITE" {
		t.Errorf("CSeq %d %q", n, method)
	}
}

func TestParseCompactHeadersAndResponses(t *testing.T) {
	b := "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP a;branch=z9hG4bKx\r\ni: call-1\r\nt: <sip:b@x>;tag=t1\r\nm: <sip:b@198.51.100.1:5080>\r\nl: 3\r\n\r\nabcdef"
	m, err := Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != 200 || m.Get("Call-ID") != "call-1" || param(m.Get("To"), "tag") != "t1" || uriOf(m.Get("Contact")) != "sip:b@198.51.100.1:5080" || string(m.Body) != "abc" {
		t.Errorf("parsed %+v", m)
	}
	for _, bad := range []string{"INVITE sip:x SIP/2.0\r\n", "SIP/2.0 abc OK\r\n\r\n", "INVITE sip:x SIP/2.0\r\nl: 9\r\n\r\nshort"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestParseMedia(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n" +
		"m=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\n" +
		"m=video 30010 RTP/AVP 96\r\nc=IN IP6 2001:db8::2\r\na=rtcp:30010\r\na=rtcp-mux\r\n" +
		"m=audio 30020 RTP/AVP 0\r\n"
	got, err := ParseMedia([]byte(sdp))
	if err != nil {
		t.Fatal(err)
	}
	want := []Media{
		{"audio", netip.MustParseAddrPort("203.0.113.1:30000"), netip.MustParseAddrPort("203.0.113.1:30001"), false},
		{"video", netip.MustParseAddrPort("[2001:db8::2]:30010"), netip.MustParseAddrPort("[2001:db8::2]:30010"), true},
		{"audio", netip.MustParseAddrPort("203.0.113.1:30020"), netip.MustParseAddrPort("203.0.113.1:30021"), false},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("ParseMedia (-want +got):\n%s", diff)
	}
	if _, err := ParseMedia([]byte("v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nt=0 0\r\n")); err != ErrNoMedia {
		t.Errorf("an SDP without media: %v, want ErrNoMedia", err)
	}
	if m, err := ParseMedia(AudioSDP(netip.MustParseAddrPort("[2001:db8::1]:40000"), 7)); err != nil || m[0].RTP != netip.MustParseAddrPort("[2001:db8::1]:40000") {
		t.Errorf("AudioSDP read back as %+v, %v", m, err)
	}
}
