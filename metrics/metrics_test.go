package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/buildinfo"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/metrics"
	"github.com/mediastack/mediastack/relay"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// newSidecar is a simulated LAN of a terminal (host 1) and a sidecar
// (host 2), each with media ports on 20000-20009, and a relay service on
// the sidecar's.
func newSidecar(t *testing.T, reflect bool) (*simlan.LAN, *mediaport.Manager, *mediaport.Manager, *relay.Service) {
	t.Helper()
	lan := simlan.New(t, simlan.Options{Seed: 1})
	newManager := func(n byte) *mediaport.Manager {
		return lan.AddHost(simlan.HostOptions{N: n, Addrs: []string{frames.Prefix(frames.V4(n)).String()},
			Media: &mediaport.Options{PortMin: 20000, PortMax: 20009}}).Media
	}
	terminal, sidecar := newManager(1), newManager(2)
	svc, err := relay.New(relay.Options{Manager: sidecar, Reflect: reflect})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return lan, terminal, sidecar, svc
}

// TestMetrics: a terminal sends through a relay and to the reflector on a
// simulated LAN; the exposition shows the fast paths' counters, the ARP
// table and the relay's.
func TestMetrics(t *testing.T) {
	lan, terminal, sidecar, svc := newSidecar(t, true)
	if _, err := svc.Create(relay.Spec{Ports: [2]uint16{20000, 20002}, Peers: [2]netip.AddrPort{{}, netip.MustParseAddrPort("198.51.100.1:20005")}}); err != nil {
		t.Fatal(err)
	}
	out, err := terminal.Open(20004)
	if err != nil {
		t.Fatal(err)
	}
	in, err := terminal.Open(20005)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		out.WriteToUDPAddrPort(make([]byte, 100), netip.MustParseAddrPort("198.51.100.2:20000")) // relayed to in
		out.WriteToUDPAddrPort(make([]byte, 50), netip.MustParseAddrPort("198.51.100.2:20009"))  // reflected to out
		lan.Run(20 * time.Millisecond)
	}
	for _, p := range []*mediaport.Port{in, out} {
		if n := len(simlan.Drain(t, p)); n != 10 {
			t.Errorf("port %d received %d datagrams, want 10", p.Port(), n)
		}
	}

	rec := httptest.NewRecorder()
	metrics.Handler(sidecar, svc).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	lines := strings.Split(body, "\n")
	for _, want := range []string{
		"mediastack_fast_rx_packets_total 20",
		"mediastack_netstack_lane_rx_packets_total 0",
		// The sidecar sends to a terminal netstack learnt from its ARP
		// request: even the first send (relayed or reflected) goes fast.
		"mediastack_fast_tx_packets_total 20",
		`mediastack_fast_tx_fallback_packets_total{reason="no-entry"} 0`,
		`mediastack_fast_tx_fallback_packets_total{reason="too-big"} 0`,
		`mediastack_fast_rx_dropped_packets_total{reason="buffer-full"} 0`,
		`mediastack_fast_rx_dropped_packets_total{reason="bad-checksum"} 0`,
		`mediastack_fast_rx_dropped_packets_total{reason="martian"} 0`,
		`mediastack_fast_rx_dropped_packets_total{reason="broadcast"} 0`,
		`mediastack_policyarp_entries{state="valid"} 2`,
		"mediastack_policyarp_invalidations_total 0",
		`mediastack_policyarp_mac_changes_total{reason="gratuitous-arp"} 0`,
		`mediastack_policyarp_mac_changes_total{reason="refresh"} 0`,
		`mediastack_policyarp_announcements_ignored_total{reason="same-mac"} 0`,
		`mediastack_policyarp_path_mtu_reports_total{result="lowered"} 0`,
		"mediastack_policyarp_evictions_total 0",
		"mediastack_media_ports_open 10",
		"mediastack_relays 1",
		`mediastack_relay_packets_total{direction="received"} 10`,
		`mediastack_relay_packets_total{direction="sent"} 10`,
		`mediastack_relay_bytes_total{direction="sent"} 1000`,
		"mediastack_reflector_ports 8",
		"mediastack_reflected_packets_total 10",
		`mediastack_relay_dropped_packets_total{reason="no_peer"} 0`,
		`mediastack_relay_rtcp_packets_total{direction="received"} 0`,
		`mediastack_relays_ended_total{reason="timeout"} 0`,
		"mediastack_relay_stream_jitter_seconds_count 0",
		`mediastack_relay_stream_loss_ratio_bucket{le="+Inf"} 0`,
		"# TYPE mediastack_relay_stream_jitter_seconds histogram",
		"# TYPE mediastack_fast_rx_packets_total counter",
		"# TYPE mediastack_policyarp_entries gauge",
	} {
		wantLine(t, lines, want)
	}
	for _, prefix := range []string{"mediastack_netstack_rx_packets_total ", "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(body, "\n"+prefix) {
			t.Errorf("metrics lack %s", prefix)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// TestBuildInfo: the exposition carries mediastack_build_info, 1, labelled
// with the running build. (A test binary's build info lists no
// dependencies, so gVisor's label is "unknown" here; cmd/mediastack's
// TestVersionBinary checks the value in a real build.)
func TestBuildInfo(t *testing.T) {
	lan := simlan.New(t, simlan.Options{Seed: 1})
	m := lan.AddHost(simlan.HostOptions{N: 2, Addrs: []string{frames.Prefix(frames.V4(2)).String()},
		Media: &mediaport.Options{PortMin: 20000, PortMax: 20009}}).Media
	rec := httptest.NewRecorder()
	metrics.Handler(m, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b := buildinfo.Read()
	want := fmt.Sprintf(`mediastack_build_info{commit=%q,goversion=%q,gvisor=%q,version=%q} 1`, b.Commit, b.GoVersion, b.GVisor, b.Version)
	if !slices.Contains(strings.Split(rec.Body.String(), "\n"), want) {
		t.Errorf("metrics lack the line %q:\n%s", want, rec.Body.String())
	}
	if b.GoVersion != runtime.Version() {
		t.Errorf("build info %+v: want %s", b, runtime.Version())
	}
}

// TestLinkDrops: frames the link itself drops (of another VLAN, untagged
// on a VLAN) show in mediastack_link_dropped_packets_total, by link and
// reason.
func TestLinkDrops(t *testing.T) {
	lan := simlan.New(t, simlan.Options{Seed: 1})
	h := lan.AddHost(simlan.HostOptions{N: 2, VLAN: 100, Addrs: []string{frames.Prefix(frames.V4(2)).String()},
		Media: &mediaport.Options{PortMin: 20000, PortMax: 20009}})
	untagged := frames.UDP{Src: netip.AddrPortFrom(frames.V4(1), 40000), Dst: netip.AddrPortFrom(frames.V4(2), 20000),
		SrcMAC: frames.MAC(1), DstMAC: frames.MAC(2), Payload: []byte("untagged")}
	otherVLAN := untagged
	otherVLAN.Tagged, otherVLAN.VID = true, 7
	h.Link.DeliverFrame(untagged.Build())
	h.Link.DeliverFrame(otherVLAN.Build())
	h.Link.DeliverFrame(otherVLAN.Build())

	rec := httptest.NewRecorder()
	metrics.Handler(h.Media, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	lines := strings.Split(rec.Body.String(), "\n")
	for _, want := range []string{
		`mediastack_link_dropped_packets_total{link="sim0",reason="untagged"} 1`,
		`mediastack_link_dropped_packets_total{link="sim0",reason="other-vlan"} 2`,
		`mediastack_link_dropped_packets_total{link="sim0",reason="tx-error"} 0`,
		"# TYPE mediastack_link_dropped_packets_total counter",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("metrics lack the line %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", rec.Body.String())
	}
}

// TestRelayQualityMetrics: a relay that carried RTP with one packet lost
// in ten is deleted; its sides' loss and jitter land in the histograms,
// with no label per call, and the deletion in relays_ended_total.
func TestRelayQualityMetrics(t *testing.T) {
	lan, terminal, sidecar, svc := newSidecar(t, false)
	r, err := svc.Create(relay.Spec{Ports: [2]uint16{20000, 20002}, Peers: [2]netip.AddrPort{{}, netip.MustParseAddrPort("198.51.100.1:20005")}})
	if err != nil {
		t.Fatal(err)
	}
	out := simlan.Open(t, terminal, 20004)
	simlan.Open(t, terminal, 20005)
	for seq := range 11 {
		if seq != 5 {
			pkt := make([]byte, 172) // PT 0, SSRC 0: G.711 at 8000 Hz
			pkt[0], pkt[2], pkt[3], pkt[7] = 0x80, 0, byte(seq), byte(seq*160%256)
			pkt[6] = byte(seq * 160 / 256)
			out.WriteToUDPAddrPort(pkt, netip.MustParseAddrPort("198.51.100.2:20000"))
		}
		lan.Run(20 * time.Millisecond)
	}
	if _, err := svc.Delete(r.ID()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	metrics.Handler(sidecar, svc).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	lines := strings.Split(rec.Body.String(), "\n")
	wantLine(t, lines, `mediastack_relays_ended_total{reason="deleted"} 1`)
	wantLine(t, lines, `mediastack_relay_stream_loss_ratio_bucket{le="0.05"} 0`)
	wantLine(t, lines, `mediastack_relay_stream_loss_ratio_bucket{le="0.1"} 1`)
	wantLine(t, lines, "mediastack_relay_stream_loss_ratio_count 1")
	wantLine(t, lines, `mediastack_relay_stream_jitter_seconds_bucket{le="0.001"} 1`)
	wantLine(t, lines, "mediastack_relay_stream_jitter_seconds_count 1")
	if t.Failed() {
		t.Logf("metrics:\n%s", rec.Body.String())
	}
}

func wantLine(t *testing.T, lines []string, want string) {
	t.Helper()
	if !slices.Contains(lines, want) {
		t.Errorf("metrics lack the line %q", want)
	}
}
