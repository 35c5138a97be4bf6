package relay

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/pion/rtcp"
)

// FuzzParseCreate: whatever the body of POST /v1/relays, parseCreate
// returns an error or a spec with two valid ports (or none, both zero,
// for the service to allocate) and peers that are unset or valid; and a
// spec it accepts, written back as a request, parses to the same spec.
// Seeds: testdata/fuzz/FuzzParseCreate.
func FuzzParseCreate(f *testing.F) {
	for _, seed := range []string{
		`{"ports":[20000,20002]}`,
		`{"ports":[20000,20002],"peers":["","198.51.100.1:5004"]}`,
		`{"ports":[20000,20002],"peers":["[2001:db8::1]:5004","[::ffff:198.51.100.1]:5004"]}`,
		`{"rtcp":true,"rtcp_mux":[false,true],"rtcp_peers":["198.51.100.1:5005",""],"learning":"heuristic","strict_source":true,"label":"call-id"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := parseCreate(body, LearnDelayed, false)
		if err != nil {
			return
		}
		if (spec.Ports[0] == 0) != (spec.Ports[1] == 0) {
			t.Fatalf("accepted ports %v from %q: both given or both allocated", spec.Ports, body)
		}
		strict := spec.StrictSource
		req := CreateRequest{Peers: []string{"", ""}, RTCPPeers: []string{"", ""}, RTCP: spec.RTCP,
			RTCPMux: spec.Mux[:], Learning: spec.Learning.String(), StrictSource: &strict, Label: spec.Label}
		if spec.Ports[0] != 0 {
			req.Ports = []int{int(spec.Ports[0]), int(spec.Ports[1])}
		}
		for _, l := range []struct {
			in  [2]netip.AddrPort
			out []string
		}{{spec.Peers, req.Peers}, {spec.RTCPPeers, req.RTCPPeers}} {
			for i, p := range l.in {
				if p.IsValid() {
					l.out[i] = p.String()
				} else if p != (netip.AddrPort{}) {
					t.Fatalf("peer %d neither valid nor unset: %#v", i, p)
				}
			}
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		spec2, err := parseCreate(again, LearnOff, true)
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

// FuzzParseRTCP: whatever arrives on an RTCP port, parseRTCP neither
// panics nor allocates, and on a compound pion/rtcp reads it agrees with
// pion on the sender and receiver reports, the first report block and the
// sender report's NTP time. Seeds: testdata/fuzz/FuzzParseRTCP.
func FuzzParseRTCP(f *testing.F) {
	for _, pkts := range [][]rtcp.Packet{
		{&rtcp.SenderReport{SSRC: 1, NTPTime: 0x0102030405060708, RTPTime: 9, PacketCount: 10, OctetCount: 1600,
			Reports: []rtcp.ReceptionReport{{SSRC: 2, FractionLost: 3, TotalLost: 0x7fffff, LastSequenceNumber: 70000, Jitter: 80, LastSenderReport: 5, Delay: 6}}},
			&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "a@b"}}}}}},
		{&rtcp.ReceiverReport{SSRC: 7, Reports: []rtcp.ReceptionReport{{SSRC: 8, TotalLost: 1}, {SSRC: 9}}}},
		{&rtcp.ReceiverReport{SSRC: 7}, &rtcp.Goodbye{Sources: []uint32{7}}},
	} {
		b, err := rtcp.Marshal(pkts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r rtcpReport
		var ok bool
		if allocs := testing.AllocsPerRun(1, func() { ok = parseRTCP(b, &r) }); allocs != 0 {
			t.Fatalf("parseRTCP(%x) allocated %v times", b, allocs)
		}
		pkts, err := rtcp.Unmarshal(b)
		if err != nil || !ok || r.malformed {
			return
		}
		var srs, rrs int
		var first *rtcp.ReceptionReport
		var ntp uint64
		for _, p := range pkts {
			var reports []rtcp.ReceptionReport
			switch p := p.(type) {
			case *rtcp.SenderReport:
				if srs == 0 {
					ntp = p.NTPTime
				}
				srs++
				reports = p.Reports
			case *rtcp.ReceiverReport:
				rrs++
				reports = p.Reports
			}
			if first == nil && len(reports) > 0 {
				first = &reports[0]
			}
		}
		if srs != r.srs || rrs != r.rrs || (srs > 0) != r.hasSR || r.hasSR && uint32(ntp>>16) != r.srNTPMid {
			t.Fatalf("%x: pion read %d SR (NTP %x), %d RR; parseRTCP %+v", b, srs, ntp, rrs, r)
		}
		if (first != nil) != r.hasBlock {
			t.Fatalf("%x: pion's first report block %+v, parseRTCP's %+v", b, first, r)
		}
		if first != nil {
			want := reportBlock{ssrc: first.SSRC, fractionLost: first.FractionLost, extHighest: first.LastSequenceNumber,
				jitter: first.Jitter, lsr: first.LastSenderReport, dlsr: first.Delay}
			got := r.block
			got.cumLost = 0
			if got != want || uint32(r.block.cumLost)&0xffffff != first.TotalLost {
				t.Fatalf("%x: report block %+v (lost %d), pion's %+v", b, r.block, r.block.cumLost, first)
			}
		}
	})
}
