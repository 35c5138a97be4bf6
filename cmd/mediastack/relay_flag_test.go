package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/relay"
)

// TestRelayFlagPeers: --relay takes a fixed peer per side, A[@IP:PORT]:B[@IP:PORT],
// as the control API's "peers" do.
func TestRelayFlagPeers(t *testing.T) {
	c := sidecarConfig{rtpPorts: "20000-20999", relays: repeated{"20000:20002@198.51.100.1:30000", "20004@[2001:db8::1]:40000:20006"}}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	// --relay relays live as long as serve: they never time out.
	want := []relay.Spec{
		{Ports: [2]uint16{20000, 20002}, Peers: [2]netip.AddrPort{{}, netip.MustParseAddrPort("198.51.100.1:30000")}, Permanent: true},
		{Ports: [2]uint16{20004, 20006}, Peers: [2]netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:40000"), {}}, Permanent: true},
	}
	if diff := cmp.Diff(want, c.relaySpecs, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("relays (-want +got):\n%s", diff)
	}
}

// TestCallFlags: --endpoint-learning and --strict-source apply to the
// --relay relays (and are the API's defaults); a bad mode or a negative
// timeout is refused.
func TestCallFlags(t *testing.T) {
	parse := func(args ...string) (sidecarConfig, error) {
		var c sidecarConfig
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.registerFlags(fs)
		if err := fs.Parse(append([]string{"--rtp-ports", "20000-20999"}, args...)); err != nil {
			return c, err
		}
		return c, c.validate()
	}
	c, err := parse("--relay", "20000:20002", "--endpoint-learning", "heuristic", "--strict-source", "--timeout", "30s", "--final-timeout", "2h")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.relaySpecs[0]; s.Learning != relay.LearnHeuristic || !s.StrictSource || !s.Permanent || c.timeout != 30*time.Second ||
		c.silentTimeout != relay.DefaultSilentTimeout || c.finalTimeout != 2*time.Hour {
		t.Errorf("parsed %+v, relay %+v", c, s)
	}
	if _, err := parse("--endpoint-learning", "sometimes"); err == nil || !strings.Contains(err.Error(), `"sometimes" is not one of delayed, immediate, heuristic, off`) {
		t.Errorf("--endpoint-learning sometimes: %v", err)
	}
	if _, err := parse("--silent-timeout", "-1s"); err == nil || !strings.Contains(err.Error(), "--silent-timeout -1s: want a duration of 0 (never) or more") {
		t.Errorf("--silent-timeout -1s: %v", err)
	}
}

// mediaHost adds host n of internal/frames to lan with media ports on
// 20000-20009.
func mediaHost(lan *simlan.LAN, n byte) *mediaport.Manager {
	return lan.AddHost(simlan.HostOptions{N: n, Addrs: []string{frames.Prefix(frames.V4(n)).String()},
		Media: &mediaport.Options{PortMin: 20000, PortMax: 20009}}).Media
}

// TestRelayFlagFixedPeerForwards: a relay from --relay with a fixed peer
// sends what arrives on A to that peer out of B, with no datagram from the
// peer first (a latched side would drop it: no peer yet).
func TestRelayFlagFixedPeerForwards(t *testing.T) {
	lan := simlan.New(t, simlan.Options{Seed: 1})
	terminal, sidecar := mediaHost(lan, 1), mediaHost(lan, 2)
	peer := netip.AddrPortFrom(frames.V4(1), 20005)
	c := sidecarConfig{rtpPorts: "20000-20009", relays: repeated{"20000:20002@" + peer.String()}}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	stop, err := startSidecar(sidecar, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	out, in := simlan.Open(t, terminal, 20004), simlan.Open(t, terminal, 20005)
	for range 5 {
		out.WriteToUDPAddrPort([]byte("rtp"), netip.AddrPortFrom(frames.V4(2), 20000))
		lan.Run(20 * time.Millisecond)
	}
	got := simlan.Drain(t, in)
	if len(got) != 5 {
		t.Fatalf("the fixed peer %v received %d datagrams, want 5", peer, len(got))
	}
	if from := got[0].From; from != netip.AddrPortFrom(frames.V4(2), 20002).String() {
		t.Errorf("relayed from %v, want out of B, %v:20002", from, frames.V4(2))
	}
}

// TestRelayFlagRTCPWarning: a relay on odd (RTCP) ports is accepted with a
// one-line warning naming the RTP relay and its RTCP twin to give instead,
// unless it is the RTCP twin of an RTP relay given beside it.
func TestRelayFlagRTCPWarning(t *testing.T) {
	for _, tc := range []struct {
		relays repeated
		want   []string
	}{
		{repeated{"20001:20003"}, []string{"--relay 20001:20003: port 20001 is odd, an RTCP port (RTP takes the even port, RTCP the one after it); " +
			"for a call's RTP and RTCP give --relay 20000:20002 --relay 20001:20003"}},
		{repeated{"20000:20003"}, []string{"--relay 20000:20003: port 20003 is odd, an RTCP port (RTP takes the even port, RTCP the one after it); " +
			"for a call's RTP and RTCP give --relay 20000:20002 --relay 20001:20003"}},
		{repeated{"20000:20002", "20001:20003@198.51.100.1:30001"}, nil},
		{repeated{"20000:20002"}, nil},
	} {
		c := sidecarConfig{rtpPorts: "20000-20999", relays: tc.relays}
		if err := c.validate(); err != nil {
			t.Fatalf("%q: %v", tc.relays, err)
		}
		if diff := cmp.Diff(tc.want, c.warnings); diff != "" {
			t.Errorf("%q: warnings (-want +got):\n%s", tc.relays, diff)
		}
	}

	// serve logs the warning, one line, when the sidecar starts.
	sidecar := mediaHost(simlan.New(t, simlan.Options{Seed: 1}), 2)
	c := sidecarConfig{rtpPorts: "20000-20009", relays: repeated{"20001:20003"}}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	stop, err := startSidecar(sidecar, c, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	var warn []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			warn = append(warn, line)
		}
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "port 20001 is odd, an RTCP port") {
		t.Errorf("want one warning line about the odd port, got:\n%s", logs.String())
	}
}
