package client

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/p2sp"
)

// simRate is every sim host's link: 4 Mbit/s out.
const simRate = 4_000_000

// newPacedLAN is a LAN of mediastack stacks on link/sim, every host's
// egress capped at simRate, whose stacks run on the wall clock (the torrent
// library does) and whose network time is paced against it.
func newPacedLAN(t *testing.T) *simlan.LAN {
	lan := simlan.New(t, simlan.Options{Seed: 2, Impairments: sim.Impairments{Bandwidth: simRate}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := time.Now()
		for ctx.Err() == nil {
			time.Sleep(time.Millisecond)
			now := time.Now()
			lan.Run(now.Sub(last))
			last = now
		}
	}()
	// Registered before the hosts: it runs after their stacks closed.
	t.Cleanup(func() { cancel(); <-done })
	return lan
}

func simHost(t *testing.T, lan *simlan.LAN, n byte, addrs ...netip.Addr) p2sp.Network {
	var cidrs []string
	for _, a := range addrs {
		cidrs = append(cidrs, frames.Prefix(a).String())
	}
	return p2sp.StackNetwork(lan.AddHost(simlan.HostOptions{N: n, Addrs: cidrs, WallClock: true}).Stack)
}

func simListen(t *testing.T, n p2sp.Network, a netip.Addr, port uint16) net.Listener {
	l, err := n.Listen(netip.AddrPortFrom(a, port))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The whole method on mediastack's stack (link/sim, every link 4 Mbit/s):
// over IPv4 the web seed alone, then the web seed and three peers; over
// IPv6 the web seed and three peers.
func TestOnStack(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name, addr := "v4", frames.V4
		if v6 {
			name, addr = "v6", frames.V6
		}
		t.Run(name, func(t *testing.T) {
			lan := newPacedLAN(t)
			on := simHost(t, lan, 10, addr(10), addr(11))
			o := newTestOriginOn(t, simListen(t, on, addr(10), 80), simListen(t, on, addr(11), 81), 0)
			data := testMedia(3 << 20)
			id, src := o.publish(data, ".wav", true)
			manager := func(n byte, edit func(*Options)) *Manager {
				return newTestManager(t, addr(n), o, func(opts *Options) {
					opts.Net = simHost(t, lan, n, addr(n))
					opts.Listen = netip.AddrPortFrom(addr(n), 6881)
					if edit != nil {
						edit(opts)
					}
				})
			}
			var webOnly Result
			if !v6 {
				alone := manager(30, nil)
				var err error
				if webOnly, err = alone.Fetch(testContext(t), id, nil); err != nil {
					t.Fatal(err)
				}
				alone.Close()
			}
			for i := range 3 {
				n := byte(21 + i)
				p := manager(n, nil)
				seedFrom(t, p, o, id, src)
			}
			o.waitSwarm(id, 3)
			m := manager(31, nil)
			res, err := m.Fetch(testContext(t), id, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v6 {
				t.Logf("v6, %d bytes, every link %d bit/s: web seed + 3 peers %v: %v", len(data), simRate, res.Elapsed.Round(time.Millisecond), res.Sources)
			} else {
				t.Logf("v4, %d bytes, every link %d bit/s: web seed alone %v, web seed + 3 peers %v (%.2fx): %v", len(data), simRate,
					webOnly.Elapsed.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond), webOnly.Elapsed.Seconds()/res.Elapsed.Seconds(), res.Sources)
			}
			assertShared(t, res, webOnly, int64(len(data)), WebSource, addr(21).String(), addr(22).String(), addr(23).String())
			assertCached(t, m, id, data)
		})
	}
}
