package rtpenginetest

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// What rtpengine-ng-client printed for a query and for an offer (its two
// Data::Dumper styles), trimmed.
func TestRunOutputReadBack(t *testing.T) {
	terse := "Result dictionary:\n-----8<-----8<-----8<-----8<-----8<-----\n{\n  SSRC => {},\n  'last signal' => '1796248877',\n" +
		"  tags => {\n    ft1 => {\n      medias => [\n        {\n          flags => [\n            'send',\n            'recv'\n          ],\n" +
		"          streams => [],\n          type => 'audio'\n        }\n      ],\n      tag => 'it\\'s'\n    }\n  }\n}\n----->8----->8----->8----->8----->8-----\n"
	v, err := parseDumper(block(terse, "Result dictionary:"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"SSRC": map[string]any{}, "last signal": "1796248877", "tags": map[string]any{"ft1": map[string]any{
		"medias": []any{map[string]any{"flags": []any{"send", "recv"}, "streams": []any{}, "type": "audio"}}, "tag": "it's"}}}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("terse dump (-want +got):\n%s", diff)
	}
	offer := "Old SDP:\n-----8<-----8<-----8<-----8<-----8<-----\nv=0\r\n\n----->8----->8----->8----->8----->8-----\n" +
		"New SDP:\n-----8<-----8<-----8<-----8<-----8<-----\nv=0\r\nm=audio 30000 RTP/AVP 0\r\n\n----->8----->8----->8----->8----->8-----\n" +
		"Result dictionary:\n-----8<-----8<-----8<-----8<-----8<-----\n$VAR1 = {\n          'warning' => 'x'\n        };\n----->8----->8----->8----->8----->8-----\n"
	if got := block(offer, "New SDP:"); got != "v=0\r\nm=audio 30000 RTP/AVP 0\r\n" {
		t.Errorf("new SDP %q", got)
	}
	if v, err := parseDumper(block(offer, "Result dictionary:")); err != nil || !cmp.Equal(v, map[string]any{"warning": "x"}) {
		t.Errorf("default dump: %v, %v", v, err)
	}
	for _, bad := range []string{"{ a => ", "{ a 'b' }", "[ 'x", "{} x"} {
		if v, err := parseDumper(bad); err == nil {
			t.Errorf("parseDumper(%q) = %v, want an error", bad, v)
		}
	}
}

func TestNormalizeSDP(t *testing.T) {
	in := "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\nc=IN IP4 203.0.113.1\r\nm=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\n" +
		"m=audio 30010 RTP/AVP 0\r\nc=IN IP4 203.0.113.10\r\na=rtcp:30010\r\na=rtcp-mux\r\nm=video 30020/2 RTP/AVP 96\r\na=rtcp:40000 IN IP6 2001:db8:1::1\r\n"
	want := "v=0\r\no=- 1 1 IN IP4 RELAY-IP4\r\nc=IN IP4 RELAY-IP4\r\nm=audio PORT RTP/AVP 0\r\na=rtcp:PORT+1\r\n" +
		"m=audio PORT RTP/AVP 0\r\nc=IN IP4 203.0.113.10\r\na=rtcp:PORT\r\na=rtcp-mux\r\nm=video PORT/2 RTP/AVP 96\r\na=rtcp:RTCP-PORT IN IP6 RELAY-IP6\r\n"
	if diff := cmp.Diff(want, NormalizeSDP(in, netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8:1::1"))); diff != "" {
		t.Errorf("NormalizeSDP (-want +got):\n%s", diff)
	}
}
