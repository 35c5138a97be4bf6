//go:build linux

package mediahost_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/mediaport"
)

// TestRawLinkSurvivesFlap takes the raw link's interface down and up
// again while the kernel streams to a media port: the host lives on, the
// flap and the writes it refused are counted, and media flows both ways
// again on the same port.
func TestRawLinkSurvivesFlap(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.NewNamespace(t)
	veth := ns.AddVeth()
	var linkErrors atomic.Int32
	h, err := mediahost.New(mediahost.Options{
		Link:        mediahost.Link{Kind: mediahost.Raw, Name: veth.Outside},
		Addrs:       []netip.Prefix{netnstest.StackV4, netnstest.StackV6},
		Ports:       mediaport.Options{PortMin: 20000, PortMax: 20999},
		OnLinkError: func(error) { linkErrors.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ep := h.Stack().Link(0).(*raw.Endpoint)
	port, err := h.Ports().Open(20000)
	if err != nil {
		t.Fatal(err)
	}
	kernel := netip.AddrPortFrom(netnstest.KernelV4.Addr(), 40000)
	var conn *net.UDPConn
	if err := ns.Enter(func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(kernel))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ns.WaitPing(netnstest.StackV4.Addr())

	// The kernel streams numbered datagrams, one every 2 ms, until stop.
	var sent atomic.Uint32
	stop := make(chan struct{})
	var streaming sync.WaitGroup
	streaming.Add(1)
	go func() {
		defer streaming.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var b [160]byte
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint32(b[:], sent.Add(1))
			_, _ = conn.WriteToUDPAddrPort(b[:], netip.AddrPortFrom(netnstest.StackV4.Addr(), 20000))
		}
	}()
	defer func() { close(stop); streaming.Wait() }()

	// receiveAfter waits for a datagram numbered above mark.
	receiveAfter := func(mark uint32) error {
		buf := make([]byte, 2048)
		deadline := time.Now().Add(netnstest.StateTimeout) // a hang guard
		for {
			_ = port.SetReadDeadline(deadline)
			n, _, err := port.ReadFromUDPAddrPort(buf)
			if err != nil {
				return fmt.Errorf("no datagram numbered above %d: %w", mark, err)
			}
			if n >= 4 && binary.BigEndian.Uint32(buf) > mark {
				return nil
			}
		}
	}
	if err := receiveAfter(0); err != nil {
		t.Fatal(err)
	}

	netnstest.MustRun(t, "ip", "link", "set", "dev", veth.Outside, "down")
	before := ep.Stats.TxErrors.Load()
	_, _ = port.WriteToUDPAddrPort([]byte("while down"), kernel) // refused by the link, counted
	netnstest.MustRun(t, "ip", "link", "set", "dev", veth.Outside, "up")
	mark := sent.Load()
	if err := receiveAfter(mark); err != nil {
		t.Fatalf("after the flap: %v (stats %v)", err, port.Stats())
	}
	if got := ep.Stats.TxErrors.Load(); got == before {
		t.Error("a datagram sent while the interface was down left TxErrors unchanged")
	}
	netnstest.WaitFor(t, netnstest.StateTimeout, "the reader counting the flap", func() error {
		if ep.DeviceStats().InterfaceDown.Load() == 0 {
			return errors.New("DeviceStats.InterfaceDown = 0")
		}
		return nil
	})

	// And back to the kernel, on the same port.
	buf := make([]byte, 64)
	netnstest.WaitFor(t, netnstest.StateTimeout, "the kernel receiving from the port after the flap", func() error {
		if _, err := port.WriteToUDPAddrPort([]byte("after the flap"), kernel); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // a poll step
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			if err != nil {
				return err
			}
			if string(buf[:n]) == "after the flap" {
				return nil
			}
		}
	})
	if n := linkErrors.Load(); n != 0 {
		t.Errorf("OnLinkError called %d times for a flap, want 0", n)
	}
	t.Logf("flap: %d down, %d refused writes; %v", ep.DeviceStats().InterfaceDown.Load(), ep.Stats.TxErrors.Load(), port.Stats())
}
