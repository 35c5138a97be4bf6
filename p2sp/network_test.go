package p2sp_test

import (
	"context"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/p2sp/p2spsim"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestStackConnAddrsStay: a connection of StackNetwork keeps its addresses
// after the peer is gone (the torrent library reads RemoteAddr of every
// accepted connection; gonet's turns nil once the endpoint lost its peer).
func TestStackConnAddrsStay(t *testing.T) {
	lan, err := p2spsim.New(p2spsim.Options{Seed: 1}, p2spsim.NodeOptions{Name: "a"}, p2spsim.NodeOptions{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	a, b := lan.Node("a"), lan.Node("b")
	l, err := a.Net.Listen(a.AddrPort(0, 6881, false))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := b.Net.DialContext(ctx, "tcp", a.AddrPort(0, 6881, false).String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, want := c.RemoteAddr().String(), d.LocalAddr().String(); got != want {
		t.Errorf("accepted RemoteAddr %s, want the dialer's %s", got, want)
	}
	d.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	c.Read(make([]byte, 1)) // EOF once the FIN arrives
	if c.RemoteAddr() == nil || c.LocalAddr() == nil || c.RemoteAddr().String() != d.LocalAddr().String() {
		t.Errorf("after the peer closed: RemoteAddr %v, LocalAddr %v", c.RemoteAddr(), c.LocalAddr())
	}
}
