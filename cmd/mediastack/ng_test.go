package main

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
)

// lockedBuffer is a log destination goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestListenNG: --listen-ng serves the ng protocol on the host's loopback
// with calls on the sidecar's ports and the stack's address in the SDP;
// stopping the sidecar stops it.
func TestListenNG(t *testing.T) {
	sidecar := mediaHost(simlan.New(t, simlan.Options{Seed: 1}), 2)
	c := sidecarConfig{rtpPorts: "20000-20009"}
	c.ng.listen = "127.0.0.1:0"
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	c.ng.addrs = hostAddrs([]netip.Prefix{frames.Prefix(frames.V4(2)), netip.MustParsePrefix("198.51.100.99/24")})
	var logs lockedBuffer
	stop, err := startSidecar(sidecar, c, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`ng protocol listening" addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no listening line in:\n%s", logs.String())
	}
	conn, err := net.Dial("udp", m[1])
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
