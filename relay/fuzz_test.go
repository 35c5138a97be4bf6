package relay

import (
	"encoding/json"
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
