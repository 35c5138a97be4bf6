package calls

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSDP: whatever a party sends, parseSDP returns an error or sections
// that apply rewrites; and a rewritten SDP parses again with the same
// sections, the relayed ones pointing at the relay. Seeds: two here and
// every SDP of ng's golden tests (ng/testdata/sdp).
func FuzzSDP(f *testing.F) {
	f.Add("v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:6001\r\na=rtcp-mux\r\na=ptime:20\r\n")
	f.Add("v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\nm=video 0 RTP/AVP 96\r\nm=application 9 TCP/MSRP *\r\n")
	golden, _ := filepath.Glob("../ng/testdata/sdp/*/*.sdp")
	for _, g := range golden {
		if b, err := os.ReadFile(g); err == nil {
			f.Add(strings.ReplaceAll(string(b), "\n", "\r\n"))
		}
	}
	relay := netip.MustParseAddr("198.51.100.2")
	f.Fuzz(func(t *testing.T, text string) {
		in, err := parseSDP([]byte(text), DefaultMaxMedia)
		if err != nil {
			return
		}
		w := rewrite{addr: relay, medias: make([]mediaOut, len(in.medias))}
		for i := range w.medias {
			w.medias[i] = mediaOut{port: 30000 + 4*uint16(i), rtcpPort: 30001 + 4*uint16(i), mux: i%2 == 0, ptime: "20"}
		}
		relayed := make([]bool, len(in.medias))
		for i, m := range in.medias {
			relayed[i] = m.relayed
		}
		out, err := in.apply(w)
		if err != nil {
			return // pion refuses to write back what it read: an error reply
		}
		again, err := parseSDP(out, DefaultMaxMedia)
		if err != nil {
			t.Fatalf("the rewrite of %q does not parse: %v\n%s", text, err, out)
		}
		if len(again.medias) != len(relayed) {
			t.Fatalf("%d sections became %d", len(relayed), len(again.medias))
		}
		for i, m := range again.medias {
			if relayed[i] && (m.port != w.medias[i].port || (!m.hold() && m.addr != relay)) {
				t.Fatalf("section %d relayed to %v port %d, want %v port %d:\n%s", i, m.addr, m.port, relay, w.medias[i].port, out)
			}
			if relayed[i] && strings.Contains(string(out), "a=candidate") {
				t.Fatalf("ICE candidates left in:\n%s", out)
			}
		}
	})
}
