package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/internal/rtpenginetest"
	"github.com/mediastack/mediastack/internal/sipua"
)

// A second real rtpengine, standing in for mediastack as the relay under
// test while the comparison harness is proven: the same program must give
// the same SDPs.
var (
	rtpengine2V4 = netip.MustParseAddr("203.0.113.2")
	rtpengine2V6 = netip.MustParseAddr("2001:db8:1::2")
)

// TestNgClientAgainstRtpengine: Debian's rtpengine-ng-client drives the
// real rtpengine through a call (ping, offer, answer, query, list,
// statistics, delete), each answer checked: the yardstick for TestNgClient.
func TestNgClientAgainstRtpengine(t *testing.T) {
	netnstest.RequireTools(t, "rtpengine", "rtpengine-ng-client")
	ns := netnstest.NewNamespace(t)
	ngClientCall(t, startRtpengine(t, ns, ngAddr, rtpengineV4))
}

// dict walks a reply dictionary down the keys given (a number indexes a
// list) and returns what is there, or nil.
func dict(v any, path ...string) any {
	for _, k := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// ngClientCall takes a call through the relay with rtpengine-ng-client.
func ngClientCall(t *testing.T, relay relayTarget) {
	c := relay.client
	r, err := c.Run("ping")
	if err != nil || r.Dict["result"] != "pong" {
		t.Fatalf("ping: %v %v\n%s", r.Dict, err, r.Output)
	}

	const callID, fromTag, toTag = "ngclient-call-1", "caller-tag", "callee-tag"
	offer := string(sipua.AudioSDP(callerMedia, 1001))
	flags := []string{"--replace-origin", "--replace-session-connection", "--ICE=remove"}
	r, err = c.Offer(callID, fromTag, offer, flags...)
	if err != nil {
		t.Fatalf("offer: %v\n%s", err, r.Output)
	}
	logSDP(t, "offer", []byte(r.OldSDP), []byte(r.NewSDP))
	toCallee := relayMedia(t, "offer", r.NewSDP, relay.media[0])

	answer := string(sipua.AudioSDP(calleeMedia, 2002))
	r, err = c.Answer(callID, fromTag, toTag, answer, flags...)
	if err != nil {
		t.Fatalf("answer: %v\n%s", err, r.Output)
	}
	logSDP(t, "answer", []byte(r.OldSDP), []byte(r.NewSDP))
	toCaller := relayMedia(t, "answer", r.NewSDP, relay.media[0])
	if toCaller.RTP.Port() == toCallee.RTP.Port() {
		t.Errorf("the offer and the answer both give port %d: each side needs its own", toCaller.RTP.Port())
	}

	r, err = c.Query(callID)
	if err != nil {
		t.Fatalf("query: %v\n%s", err, r.Output)
	}
	// Each tag's stream: the port the relay receives that side's media on
	// (advertised to it in the other side's SDP), and the side's own
	// address from its SDP.
	for _, side := range []struct {
		tag   string
		local netip.AddrPort
		peer  netip.AddrPort
	}{{fromTag, toCaller.RTP, callerMedia}, {toTag, toCallee.RTP, calleeMedia}} {
		stream := dict(r.Dict, "tags", side.tag, "medias", "0", "streams", "0")
		got := fmt.Sprint(dict(stream, "local port"), " ", dict(stream, "endpoint", "address"), " ", dict(stream, "endpoint", "port"), " ", dict(r.Dict, "tags", side.tag, "medias", "0", "type"))
		want := fmt.Sprint(side.local.Port(), " ", side.peer.Addr(), " ", side.peer.Port(), " audio")
		if got != want {
			t.Errorf("query: tag %s's first stream: local port, endpoint address and port, media type %q, want %q\n%s", side.tag, got, want, r.Output)
		}
	}
	for _, k := range []string{"RTP", "RTCP"} {
		for _, counter := range []string{"packets", "bytes", "errors"} {
			if v, ok := dict(r.Dict, "totals", k, counter).(string); !ok || v != "0" {
				t.Errorf("query: totals.%s.%s = %v, want 0 (no media sent)\n%s", k, counter, dict(r.Dict, "totals", k, counter), r.Output)
			}
		}
	}

	// list and statistics, which monitoring scripts read.
	r, err = c.Run("list")
	if calls, _ := dict(r.Dict, "calls").([]any); err != nil || len(calls) != 1 || calls[0] != callID {
		t.Errorf("list: %v %v, want the one call %q\n%s", r.Dict, err, callID, r.Output)
	}
	r, err = c.Run("statistics")
	if own := dict(r.Dict, "statistics", "currentstatistics", "sessionsown"); err != nil || own != "1" || dict(r.Dict, "statistics", "totalstatistics", "managedsessions") == nil {
		t.Errorf("statistics: current sessionsown %v (want 1), %v; want totalstatistics.managedsessions too\n%s", own, err, r.Output)
	}

	r, err = c.Delete(callID, fromTag)
	if err != nil || r.Dict["warning"] != nil || dict(r.Dict, "totals", "RTP") == nil {
		t.Fatalf("delete: %v %v, want ok with the call's statistics\n%s", r.Dict, err, r.Output)
	}
	netnstest.WaitFor(t, netnstest.StateTimeout, "the relay forgetting "+callID, func() error { return c.UnknownCall(callID) })
	// A second delete finds nothing, and says so without failing: Kamailio
	// needs "ok" from every delete.
	r, err = c.Delete(callID, fromTag)
	if err != nil || r.Dict["warning"] != "Call-ID not found or tags didn't match" {
		t.Errorf("delete again: %v %v, want ok with a warning\n%s", r.Dict, err, r.Output)
	}
	// An answer for a call nobody offered is an error.
	_, err = c.Answer("no-such-call", fromTag, toTag, answer)
	var e *rtpenginetest.ErrorReply
	if !errors.As(err, &e) || e.Reason != "Unknown call-id" {
		t.Errorf("answer for an unknown call: %v, want the error \"Unknown call-id\"", err)
	}
}

// relayMedia checks that a rewritten SDP asks for its one audio stream at
// the relay's address, RTP on an even port, RTCP on the next, and returns
// it.
func relayMedia(t *testing.T, what, sdp string, relayAddr netip.Addr) sipua.Media {
	t.Helper()
	media, err := sipua.ParseMedia([]byte(sdp))
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, sdp)
	}
	m := media[0]
	if len(media) != 1 || m.Type != "audio" || m.RTP.Addr() != relayAddr || m.RTP.Port()%2 != 0 || m.RTCP != netip.AddrPortFrom(relayAddr, m.RTP.Port()+1) {
		t.Fatalf("%s: the relay's SDP asks for media at %+v: want one audio stream at %v, RTP on an even port, RTCP on the next\n%s", what, media, relayAddr, sdp)
	}
	return m
}

// sdpCase is an offer and its answer that two relays must rewrite the same
// way.
type sdpCase struct {
	name          string
	offer, answer string   // with \n line ends, made \r\n
	flags         []string // rtpengine-ng-client options for both
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

var sdpCases = []sdpCase{
	{
		name: "audio",
		offer: `v=0
o=alice 2890844526 2890844526 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.1
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
`,
		answer: `v=0
o=bob 2808844564 2808844564 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.1
t=0 0
m=audio 42000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
`,
		flags: []string{"--replace-origin", "--replace-session-connection"},
	},
	{
		name: "audio+video",
		offer: `v=0
o=alice 1 1 IN IP4 198.51.100.1
s=call
c=IN IP4 198.51.100.1
t=0 0
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 40002 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
`,
		answer: `v=0
o=bob 2 2 IN IP4 198.51.100.1
s=call
c=IN IP4 198.51.100.1
t=0 0
m=audio 42000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 42002 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
`,
		flags: []string{"--replace-origin", "--replace-session-connection"},
	},
	{
		name: "rtcp-mux offered and accepted",
		offer: `v=0
o=alice 1 1 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.1
t=0 0
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=rtcp:40000
a=rtcp-mux
`,
		answer: `v=0
o=bob 2 2 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.1
t=0 0
m=audio 42000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=rtcp:42000
a=rtcp-mux
`,
		flags: []string{"--replace-origin", "--replace-session-connection", "--rtcp-mux=offer"},
	},
	{
		name: "ICE removed",
		offer: `v=0
o=alice 1 1 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.1
t=0 0
a=ice-options:trickle
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ice-ufrag:F7gI
a=ice-pwd:x9cml/YzichV2+XlhiMu8g
a=candidate:1 1 UDP 2130706431 198.51.100.1 40000 typ host
a=candidate:1 2 UDP 2130706430 198.51.100.1 40001 typ host
a=end-of-candidates
`,
		answer: `v=0
o=bob 2 2 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.1
t=0 0
m=audio 42000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
`,
		flags: []string{"--replace-origin", "--replace-session-connection", "--ICE=remove"},
	},
	{
		name: "IPv6",
		offer: `v=0
o=alice 1 1 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=audio 40000 RTP/AVP 0 8
a=sendrecv
`,
		answer: `v=0
o=bob 2 2 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=audio 42000 RTP/AVP 8
a=sendrecv
`,
		flags: []string{"--replace-origin", "--replace-session-connection"},
	},
}

// sameSDP sends each case's offer and answer to the yardstick and to the
// relay under test and compares what they wrote, addresses and ports
// normalized.
func sameSDP(t *testing.T, want, got relayTarget) {
	for i, tc := range sdpCases {
		t.Run(tc.name, func(t *testing.T) {
			callID, fromTag, toTag := fmt.Sprintf("same-sdp-%d", i), "from-"+strconv.Itoa(i), "to-"+strconv.Itoa(i)
			for _, step := range []struct {
				name string
				send func(*rtpenginetest.Client) (rtpenginetest.Reply, error)
			}{
				{"offer", func(c *rtpenginetest.Client) (rtpenginetest.Reply, error) {
					return c.Offer(callID, fromTag, crlf(tc.offer), tc.flags...)
				}},
				{"answer", func(c *rtpenginetest.Client) (rtpenginetest.Reply, error) {
					return c.Answer(callID, fromTag, toTag, crlf(tc.answer), tc.flags...)
				}},
			} {
				var sdps [2]string
				for j, relay := range []relayTarget{want, got} {
					r, err := step.send(relay.client)
					if err != nil {
						t.Fatalf("%s to %s: %v\n%s", step.name, relay.name, err, r.Output)
					}
					sdps[j] = rtpenginetest.NormalizeSDP(r.NewSDP, relay.media...)
					if j == 0 {
						logSDP(t, step.name+" ("+relay.name+")", []byte(r.OldSDP), []byte(r.NewSDP))
					}
				}
				if diff := cmp.Diff(sdps[0], sdps[1]); diff != "" {
					t.Errorf("%s: %s's SDP and %s's differ (-want +got), addresses and ports normalized:\n%s", step.name, want.name, got.name, diff)
				}
			}
			for _, relay := range []relayTarget{want, got} {
				if r, err := relay.client.Delete(callID, fromTag); err != nil {
					t.Errorf("delete on %s: %v\n%s", relay.name, err, r.Output)
				}
			}
		})
	}
}

// TestSameSDPHarness proves the SDP comparison on two real rtpengines
// (different addresses, ports and ng ports): they must agree, case by
// case, once addresses and ports are normalized.
func TestSameSDPHarness(t *testing.T) {
	netnstest.RequireTools(t, "rtpengine", "rtpengine-ng-client")
	ns := netnstest.NewNamespace(t)
	want := startRtpengine(t, ns, ngAddr, rtpengineV4, rtpengineV6)
	got := startRtpengine(t, ns, rtpengineNG2, rtpengine2V4, rtpengine2V6)
	got.name = "a second rtpengine"
	sameSDP(t, want, got)
}

// TestNgClient: Debian's rtpengine-ng-client, a client nobody here wrote,
// takes a call through mediastack's ng port: ping, offer, answer, query,
// list, statistics, delete, each answer checked as TestNgClientAgainstRtpengine checks the
// real rtpengine's.
func TestNgClient(t *testing.T) {
	netnstest.RequireTools(t, "rtpengine-ng-client", "ping")
	ns := netnstest.NewNamespace(t)
	ngClientCall(t, startMediastack(t, ns, "msngc", ngAddr))
}

// TestSameSDPAsRtpengine: the same offers and answers (audio; audio and
// video; rtcp-mux; ICE removed; IPv6) sent to the real rtpengine and to
// mediastack give SDPs that differ only in addresses and ports.
func TestSameSDPAsRtpengine(t *testing.T) {
	netnstest.RequireTools(t, "rtpengine", "rtpengine-ng-client", "ping")
	ns := netnstest.NewNamespace(t)
	got := startMediastack(t, ns, "mssdp", ngAddr)
	want := startRtpengine(t, ns, rtpengineNG2, rtpengineV4, rtpengineV6)
	sameSDP(t, want, got)
}
