package ng_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/calls/callstest"
	"github.com/mediastack/mediastack/internal/bencode"
)

// serveUDP runs the server on a loopback UDP socket until the test ends;
// it returns a client socket connected to it, as Kamailio's are.
func serveUDP(t testing.TB, s *server) net.Conn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(pc) }()
	t.Cleanup(func() {
		pc.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its socket closed")
		}
	})
	conn, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// roundTrip sends a datagram and reads the reply, with a deadline.
func roundTrip(t testing.TB, conn net.Conn, req []byte, buf []byte) []byte {
	t.Helper()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestServeUDP: over a connected UDP socket, as Kamailio's, a ping and an
// offer get their replies from the address they were sent to.
func TestServeUDP(t *testing.T) {
	s := newServer(t, callstest.Options{})
	conn := serveUDP(t, s)
	buf := make([]byte, 65536)
	if got := roundTrip(t, conn, []byte("1_4242_0 d7:command4:pinge"), buf); string(got) != "1_4242_0 d6:result4:ponge" {
		t.Errorf("ping over UDP: %q", got)
	}
	req, _ := bencode.Marshal(kamailio("offer", "udp-call", "a", "", offerSDP, "replace-origin"))
	got := roundTrip(t, conn, append([]byte("1_4242_1 "), req...), buf)
	if !strings.HasPrefix(string(got), "1_4242_1 d6:result2:ok3:sdp") {
		t.Errorf("offer over UDP: %q", got)
	}
}

// BenchmarkCall: offer, answer and delete of one call, one after the
// other, in process (Handle) and over UDP loopback; calls/s is what the
// ng port sustains from one client.
func BenchmarkCall(b *testing.B) {
	for _, transport := range []string{"in-process", "udp"} {
		b.Run(transport, func(b *testing.B) {
			s := newServer(b, callstest.Options{})
			var conn net.Conn
			if transport == "udp" {
				conn = serveUDP(b, s)
			}
			buf := make([]byte, 65536)
			do := func(cookie string, d bencode.Dict) {
				body, err := bencode.Marshal(d)
				if err != nil {
					b.Fatal(err)
				}
				req := append([]byte(cookie+" "), body...)
				var reply []byte
				if conn == nil {
					reply = s.srv.Handle(callstest.ProxyAddr, req)
				} else {
					reply = roundTrip(b, conn, req, buf)
				}
				if !strings.HasPrefix(string(reply), cookie+" d") || strings.Contains(string(reply), "5:error") {
					b.Fatalf("%s: %q", d["command"], reply)
				}
			}
			flags := "replace-origin replace-session-connection ICE=remove"
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("bench-%d", i)
				do(id+"-o", kamailio("offer", id, "a", "", offerSDP, flags))
				do(id+"-a", kamailio("answer", id, "a", "b", answerSDP, flags))
				do(id+"-d", kamailio("delete", id, "a", "", "", ""))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
