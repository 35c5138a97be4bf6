package main

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestServeRawLinkSurvivesFlap: serve on raw:IFACE keeps running, and
// reflecting, when IFACE goes down and up again.
func TestServeRawLinkSurvivesFlap(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTools(t, "ping")
	host, peer, hostEnd := wireBetween(t)

	p := host.Start(binary(t), "serve", "--link", "raw:"+hostEnd, "--addr", netnstest.StackV4.String(),
		"--rtp-ports", "20000-20009", "--reflect")
	waitForLog(t, p, "stack up")
	peer.WaitPing(netnstest.StackV4.Addr())
	conn := listenUDP(t, peer, "udp4", netip.AddrPortFrom(netnstest.KernelV4.Addr(), 40000).String())
	reflected := func(msg string) error {
		if _, err := conn.WriteToUDPAddrPort([]byte(msg), netip.AddrPortFrom(netnstest.StackV4.Addr(), 20000)); err != nil {
			return err
		}
		buf := make([]byte, 256)
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // a poll step
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return netnstest.ErrNotYet
				}
				return err
			}
			if string(buf[:n]) == msg {
				return nil
			}
		}
	}
	netnstest.WaitFor(t, netnstest.StateTimeout, "serve reflecting before the flap", func() error { return reflected("before") })

	host.MustIP("link", "set", "dev", hostEnd, "down")
	host.MustIP("link", "set", "dev", hostEnd, "up")
	netnstest.WaitCarrier(t, host, hostEnd)
	netnstest.WaitFor(t, netnstest.StateTimeout, "serve reflecting after the flap", func() error {
		select {
		case <-p.Done():
			return errors.New("serve exited: " + p.Output())
		default:
		}
		return reflected("after")
	})
	if log := p.Output(); strings.Contains(log, "link failed") {
		t.Errorf("serve logged a link failure for a flap:\n%s", log)
	}
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if log, err := p.Wait(); err != nil {
		t.Errorf("serve exited with %v after SIGINT; log:\n%s", err, log)
	}
}
