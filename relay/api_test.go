package relay_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/relay"
)

// call runs one request through the handler (no socket).
func call(t *testing.T, h http.Handler, method, path, body string) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.String()
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("response %q: %v", body, err)
	}
	return v
}

// TestControlAPI: create, list, get and delete relays over the HTTP API,
// with traffic in between so the counters move.
func TestControlAPI(t *testing.T) {
	l := newLAN(t)
	s := l.service(t, false)
	h := s.Handler()

	code, hdr, body := call(t, h, "POST", "/v1/relays", `{"ports":[20000,20002]}`)
	if code != http.StatusCreated || hdr.Get("Location") != "/v1/relays/1" || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("POST: %d %v %s", code, hdr, body)
	}
	created := decode[relay.RelayJSON](t, body)
	at := func(d time.Duration) *time.Time { t := sim.Epoch.Add(d).UTC(); return &t }
	want := relay.RelayJSON{ID: "1", Ports: [2]uint16{20000, 20002}, Created: at(time.Second), Sides: []relay.SideJSON{
		{Port: 20000, Mode: "latch", State: "unknown"}, {Port: 20002, Mode: "latch", State: "unknown"},
	}}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("created relay (-want +got):\n%s", diff)
	}
	code, _, body = call(t, h, "POST", "/v1/relays", `{"ports":[20004,20005],"peers":["","[2001:db8::3]:20020"]}`)
	if code != http.StatusCreated {
		t.Fatalf("POST with peers: %d %s", code, body)
	}
	if got := decode[relay.RelayJSON](t, body); got.ID != "2" || got.Peers != [2]string{"", "[2001:db8::3]:20020"} || got.Sides[1].Mode != "fixed" {
		t.Errorf("relay with a fixed peer: %+v", got)
	}

	t1, t2 := simlan.Open(t, l.t[0], 20010), simlan.Open(t, l.t[1], 20020)
	send(t, t1, ap("198.51.100.2:20000"), "hello")    // latches A
	send(t, t2, ap("198.51.100.2:20002"), "hi there") // latches B, goes to T1
	l.Run(50 * time.Millisecond)
	send(t, t1, ap("198.51.100.2:20000"), "again") // to T2
	l.Run(50 * time.Millisecond)

	code, _, body = call(t, h, "GET", "/v1/relays", "")
	if code != http.StatusOK {
		t.Fatalf("GET: %d %s", code, body)
	}
	list := decode[relay.ListJSON](t, body)
	if len(list.Relays) != 2 || list.Relays[0].ID != "1" || list.Relays[1].ID != "2" {
		t.Fatalf("GET listed %+v", list)
	}
	wantSides := []relay.SideJSON{
		{Port: 20000, Peer: "198.51.100.1:20010", Mode: "latch", State: "learned", LastPacket: at(time.Second + 51*time.Millisecond),
			Received: relay.PacketsJSON{Packets: 2, Bytes: 10}, Sent: relay.PacketsJSON{Packets: 1, Bytes: 8}},
		{Port: 20002, Peer: "198.51.100.3:20020", Mode: "latch", State: "learned", LastPacket: at(time.Second + 3*time.Millisecond),
			Received: relay.PacketsJSON{Packets: 1, Bytes: 8}, Sent: relay.PacketsJSON{Packets: 1, Bytes: 5},
			Dropped: relay.DroppedJSON{NoPeer: 1}},
	}
	if diff := cmp.Diff(wantSides, list.Relays[0].Sides); diff != "" {
		t.Errorf("relay 1's counters (-want +got):\n%s", diff)
	}
	if code, _, body = call(t, h, "GET", "/v1/relays/1", ""); code != http.StatusOK || decode[relay.RelayJSON](t, body).Sides[0].Received.Packets != 2 {
		t.Errorf("GET /v1/relays/1: %d %s", code, body)
	}

	code, _, body = call(t, h, "DELETE", "/v1/relays/1", "")
	if code != http.StatusOK || decode[relay.RelayJSON](t, body).Sides[1].Sent.Packets != 1 {
		t.Errorf("DELETE: %d %s", code, body)
	}
	if code, _, body = call(t, h, "GET", "/v1/relays", ""); len(decode[relay.ListJSON](t, body).Relays) != 1 {
		t.Errorf("GET after DELETE: %d %s", code, body)
	}
	// The deleted relay's ports are free again.
	if code, _, body = call(t, h, "POST", "/v1/relays", `{"ports":[20002,20000]}`); code != http.StatusCreated {
		t.Errorf("POST on the deleted relay's ports: %d %s", code, body)
	}
}

// TestControlAPIErrors: every bad request gets a 4xx with a JSON error that
// says what is wrong.
func TestControlAPIErrors(t *testing.T) {
	l := newLAN(t)
	s := l.service(t, false)
	h := s.Handler()
	if code, _, body := call(t, h, "POST", "/v1/relays", `{"ports":[20000,20001]}`); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/relays", `{"ports":[20000,`, 400, "request body is not a relay"},
		{"POST", "/v1/relays", `{"ports":[20010,20011],"peer":["198.51.100.1:5000"]}`, 400, `unknown field "peer"`},
		{"POST", "/v1/relays", `{"ports":[20010,20011]} {}`, 400, "data after the JSON object"},
		{"POST", "/v1/relays", `{"ports":[20010]}`, 400, `"ports" must list exactly 2 ports, got 1`},
		{"POST", "/v1/relays", `{"ports":[20010,70000]}`, 400, "ports[1] 70000 is not a UDP port"},
		{"POST", "/v1/relays", `{"ports":[20010,20010]}`, 400, "a relay joins two different ports"},
		{"POST", "/v1/relays", `{"ports":[20010,30000]}`, 400, "outside the media port range 20000-20099: ports[1] is 30000"},
		{"POST", "/v1/relays", `{"ports":[20010,20011],"peers":["x"]}`, 400, `"peers" must list 2 peers`},
		{"POST", "/v1/relays", `{"ports":[20010,20011],"peers":["198.51.100.1",""]}`, 400, `peers[0] "198.51.100.1" is not ip:port`},
		{"POST", "/v1/relays", `{"ports":[20001,20010]}`, 409, "ports[0] 20001 belongs to relay 1"},
		{"POST", "/v1/relays", `{"ports":[20010,20011],"pad":"` + strings.Repeat("x", 70000) + `"}`, 413, "request body over 65536 bytes"},
		{"GET", "/v1/relays/9", "", 404, `no relay "9"`},
		{"DELETE", "/v1/relays/9", "", 404, `no relay "9"`},
		{"PUT", "/v1/relays/1", "", 405, "method PUT not allowed here (allowed: GET, DELETE)"},
		{"DELETE", "/v1/relays", "", 405, "allowed: GET, POST"},
		{"GET", "/v2/relays", "", 404, "the API is under /v1/relays"},
	} {
		code, hdr, body := call(t, h, tc.method, tc.path, tc.body)
		e := decode[relay.ErrorJSON](t, body)
		if code != tc.code || !strings.Contains(e.Error, tc.want) || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s %.60s: %d %q, want %d with an error containing %q", tc.method, tc.path, tc.body, code, e.Error, tc.code, tc.want)
		}
	}
	// Nothing was made by the bad requests.
	if got := len(s.List()); got != 1 {
		t.Errorf("%d relays after bad requests, want 1", got)
	}
}

// TestControlAPICalls: a relay with RTCP allocated by the service, a peer
// given later by PUT, and the statistics in the JSON.
func TestControlAPICalls(t *testing.T) {
	l := newLAN(t)
	s := l.service(t, false)
	h := s.Handler()
	code, _, body := call(t, h, "POST", "/v1/relays", `{"rtcp":true,"rtcp_mux":[false,true],"peers":["198.51.100.1:20010",""],"learning":"heuristic","strict_source":true,"label":"call 1"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	got := decode[relay.RelayJSON](t, body)
	if got.Ports != [2]uint16{20000, 20002} || got.Sides[0].RTCPPort != 20001 || got.Sides[1].RTCPPort != 20003 ||
		got.Learning != "heuristic" || !got.StrictSource || got.Label != "call 1" || !got.RTCP || !got.Sides[1].RTCPMux ||
		got.Sides[0].State != "expected" || got.Sides[0].RTCPPeer != "198.51.100.1:20011" || got.Sides[1].State != "unknown" {
		t.Errorf("created %+v", got)
	}
	code, _, body = call(t, h, "PUT", "/v1/relays/1/peers/b", `{"peer":"198.51.100.3:20020","rtcp_mux":true}`)
	if code != http.StatusOK {
		t.Fatalf("PUT peer: %d %s", code, body)
	}
	if got := decode[relay.RelayJSON](t, body); got.Peers[1] != "198.51.100.3:20020" || got.Sides[1].Expected != "198.51.100.3:20020" ||
		got.Sides[1].Mode != "fixed" || got.Sides[1].RTCPPeer != "198.51.100.3:20020" {
		t.Errorf("after PUT: %+v", got)
	}
	t1 := simlan.Open(t, l.t[0], 20010)
	t2 := simlan.Open(t, l.t[1], 20020)
	for seq := range uint16(5) {
		if seq != 2 {
			sendBytes(t, t1, ap("198.51.100.2:20000"), rtpPacket(t, 0, seq, uint32(seq)*160, 7))
		}
		l.Run(20 * time.Millisecond)
	}
	if n := len(simlan.Drain(t, t2)); n != 4 {
		t.Errorf("T2 received %d packets, want 4", n)
	}
	_, _, body = call(t, h, "GET", "/v1/relays/1", "")
	want := &relay.StreamJSON{SSRC: 7, ClockRate: 8000, HighestSeq: 4, Expected: 4, Received: 3, Lost: 1, LossRatio: 0.25}
	if diff := cmp.Diff(want, decode[relay.RelayJSON](t, body).Sides[0].Stream); diff != "" {
		t.Errorf("side A's stream (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/relays", `{"learning":"sometimes"}`, 400, `"learning": "sometimes" is not one of delayed, immediate, heuristic, off`},
		{"POST", "/v1/relays", `{"rtcp_mux":[true]}`, 400, `"rtcp_mux" must list 2 booleans, got 1`},
		{"POST", "/v1/relays", `{"rtcp_peers":["x",""]}`, 400, `rtcp_peers[0] "x" is not ip:port`},
		{"POST", "/v1/relays", `{"ports":[20041,20044],"rtcp":true}`, 400, "ports[0] 20041 is odd"},
		{"PUT", "/v1/relays/1/peers/c", `{"peer":"198.51.100.3:20020"}`, 404, `no side "c"`},
		{"PUT", "/v1/relays/9/peers/0", `{"peer":"198.51.100.3:20020"}`, 404, `no such relay: "9"`},
		{"PUT", "/v1/relays/1/peers/0", `{"peer":"198.51.100.3"}`, 400, `peer "198.51.100.3" is not ip:port`},
		{"PUT", "/v1/relays/1/peers/0", `{"peer":"224.0.0.1:5000"}`, 400, "is not a unicast address"},
		{"PUT", "/v1/relays/1/peers/0", `{"pear":"198.51.100.3:1"}`, 400, `unknown field "pear"`},
		{"GET", "/v1/relays/1/peers/0", "", 405, "allowed: PUT"},
	} {
		code, _, body := call(t, h, tc.method, tc.path, tc.body)
		if e := decode[relay.ErrorJSON](t, body); code != tc.code || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s %s: %d %q, want %d with an error containing %q", tc.method, tc.path, tc.body, code, e.Error, tc.code, tc.want)
		}
	}
	// The range has 25 pairs of pairs; then the service has none left.
	for i := range 24 {
		if code, _, body := call(t, h, "POST", "/v1/relays", `{}`); code != http.StatusCreated {
			t.Fatalf("POST %d: %d %s", i, code, body)
		}
	}
	if code, _, body := call(t, h, "POST", "/v1/relays", `{}`); code != http.StatusServiceUnavailable || !strings.Contains(body, "no free even/odd port pair in 20000-20099") {
		t.Errorf("POST on a full range: %d %s", code, body)
	}
}
