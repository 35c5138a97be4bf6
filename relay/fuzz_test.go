package relay

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// FuzzParseCreate: whatever the body of POST /v1/relays, parseCreate
// returns an error or a spec with two valid ports and peers that are unset
// or valid; and a spec it accepts, written back as a request, parses to
// the same spec. Seeds: testdata/fuzz/FuzzParseCreate.
func FuzzParseCreate(f *testing.F) {
	for _, seed := range []string{
		`{"ports":[20000,20002]}`,
		`{"ports":[20000,20002],"peers":["","198.51.100.1:5004"]}`,
		`{"ports":[20000,20002],"peers":["[2001:db8::1]:5004","[::ffff:198.51.100.1]:5004"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := parseCreate(body)
		if err != nil {
			return
		}
		for i, p := range spec.Ports {
			if p == 0 {
				t.Fatalf("accepted port %d = 0 from %q", i, body)
			}
		}
		req := CreateRequest{Ports: []int{int(spec.Ports[0]), int(spec.Ports[1])}, Peers: []string{"", ""}}
		for i, p := range spec.Peers {
			if p.IsValid() {
				req.Peers[i] = p.String()
			} else if p != (spec.Peers[i]) {
				t.Fatalf("peer %d neither valid nor unset: %#v", i, p)
			}
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		spec2, err := parseCreate(again)
		if err != nil || spec2 != spec {
			t.Fatalf("%q parsed to %+v; written back as %s it parses to %+v, %v", body, spec, again, spec2, err)
		}
	})
}

// FuzzParseSpec: whatever --relay says, ParseSpec returns an error or a
// spec with two nonzero ports and peers unset or valid, which String
// writes back as a spec that parses to the same.
func FuzzParseSpec(f *testing.F) {
	for _, seed := range []string{"20000:20002", "20000:20002@198.51.100.1:30000", "20000@[2001:db8::3]:40000:20002@[2001:db8::1]:30000", "20000@[:20002", "1@1:"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			return
		}
		for i, p := range spec.Ports {
			if p == 0 {
				t.Fatalf("ParseSpec(%q): port %d is 0", s, i)
			}
		}
		for i, p := range spec.Peers {
			if p != (netip.AddrPort{}) && !p.IsValid() {
				t.Fatalf("ParseSpec(%q): peer %d neither valid nor unset: %#v", s, i, p)
			}
		}
		again, err := ParseSpec(spec.String())
		if err != nil || again != spec {
			t.Fatalf("ParseSpec(%q) = %v, which as %q parses to %v, %v", s, spec, spec.String(), again, err)
		}
	})
}
