package main

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/calls"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
)

// TestListenNG: --listen-ng serves the ng protocol on the host's loopback
// with calls on the sidecar's ports and the stack's address in the SDP;
// stopping the sidecar stops it.
func TestListenNG(t *testing.T) {
	sidecar := mediaHost(simlan.New(t, simlan.Options{Seed: 1}), 2)
	// A free port: startSidecar does not say which it bound.
	free, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free.Close()
	c := sidecarConfig{rtpPorts: "20000-20009"}
	c.ng.listen = free.LocalAddr().String()
	c.ng.maxCalls = calls.DefaultMaxCalls // --max-calls' default
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	c.ng.addrs = hostAddrs([]netip.Prefix{frames.Prefix(frames.V4(2)), netip.MustParsePrefix("198.51.100.99/24")})
	stop, err := startSidecar(sidecar, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	conn, err := net.Dial("udp", c.ng.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 65536)
	exchange := func(req string) string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if got := exchange("1 d7:command4:pinge"); got != "1 d6:result4:ponge" {
		t.Errorf("ping: %q", got)
	}
	sdp := "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
	got := exchange("2 d7:command5:offer7:call-id1:c8:from-tag1:a3:sdp" + strconv.Itoa(len(sdp)) + ":" + sdp + "e")
	if !strings.Contains(got, "c=IN IP4 198.51.100.2\r\n") || !strings.Contains(got, "m=audio 20002 RTP/AVP 0\r\n") {
		t.Errorf("offer: %q", got)
	}
}
