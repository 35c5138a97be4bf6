package simlan

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
)

// Past is a read deadline long gone: a read returns what is buffered or
// fails at once, which is how a single-goroutine simulation reads between
// two Runs.
var Past = time.Unix(1, 0)

// Reader is a datagram socket with read deadlines, such as a media port.
type Reader interface {
	SetReadDeadline(t time.Time) error
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
}

// Datagram is what a read returned; From is text, so that cmp.Diff shows
// it plainly.
type Datagram struct {
	Payload string
	From    string
}

// Drain reads every datagram r holds, without blocking, and leaves r
// without a read deadline.
func Drain(tb testing.TB, r Reader) []Datagram {
	tb.Helper()
	if err := r.SetReadDeadline(Past); err != nil {
		tb.Fatal(err)
	}
	defer r.SetReadDeadline(time.Time{})
	var got []Datagram
	buf := make([]byte, 65536)
	for {
		n, from, err := r.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			tb.Fatalf("reading: %v", err)
		}
		got = append(got, Datagram{string(buf[:n]), from.String()})
	}
}
