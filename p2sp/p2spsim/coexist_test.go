package p2spsim

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simapp"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/p2sp"
	"github.com/mediastack/mediastack/p2sp/client"
)

// coexistRun is one run of the coexistence simulation: what the RTP stream
// saw, and what the download moved.
type coexistRun struct {
	sent, received uint64
	lost           int64
	jitter         time.Duration // RFC 3550 A.8 interarrival jitter, its mean over the run
	lastJitter     time.Duration // the same estimator's value at the end of the run
	maxDelay       time.Duration // the longest one-way delay of a datagram
	fetched        int           // bytes the download moved
}

const (
	coexistLink     = 10_000_000 // the terminal's access link, bits/s
	coexistCap      = 1_000_000  // the client's download cap, bytes/s (8 Mbit/s)
	coexistDuration = 20 * time.Second
	rtpInterval     = 20 * time.Millisecond
	rtpSize         = 172 // 12-byte RTP header + 160 bytes of G.711 (20 ms)
)

// runCoexist runs, on a manual clock, a terminal behind a paced 10 Mbit/s
// access link (the upstream's egress, capped like a tbf with a 50 ms queue)
// receiving a 50 packets/s voice stream for coexistenceDuration while,
// with fetch, it downloads a file over TCP across the same link, its reads
// capped at capRate bytes/s (0: no cap) the way the client's
// DownloadRateLimiter caps them: anacrolix's rate-limited reader reads at
// most the limiter's burst, reserves what it read and sleeps the
// reservation's delay before the next read. With a cap, the terminal's
// stack has its TCP receive buffer limited as serve --p2sp-down-rate
// limits it, unless defaultBuffer. anacrolix itself cannot run on
// a manual clock (p2spsim's doc), so the fetch here is its TCP and its cap,
// not the library.
func runCoexist(t *testing.T, seed uint64, fetch bool, capRate int64, defaultBuffer bool) coexistRun {
	t.Helper()
	lan := simlan.New(t, simlan.Options{Seed: seed, Impairments: sim.Impairments{Delay: time.Millisecond}},
		simlan.HostOptions{N: 1}, simlan.HostOptions{N: 2})
	upstream, terminal := lan.Hosts[0], lan.Hosts[1]
	if err := upstream.Link.SetImpairments(sim.Impairments{Delay: time.Millisecond, Bandwidth: coexistLink, QueueLimit: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	rtpDst := netip.AddrPortFrom(frames.V4(2), 30000)
	voice, err := simapp.NewUDPStream(upstream.Stack, terminal.Stack, netip.AddrPortFrom(frames.V4(1), 30000), rtpDst, rtpSize, rtpInterval)
	if err != nil {
		t.Fatal(err)
	}
	defer voice.Close()

	// Arrival times at the terminal's link, exact on the simulated clock;
	// each datagram's send time is its sequence number times the interval.
	var run coexistRun
	var prevTransit time.Duration
	var jitter, jitterSum float64 // RFC 3550 A.8, in nanoseconds
	var highest uint64
	terminal.SetHook(func(frame []byte) link.Verdict {
		d, ok := frames.ParseUDP(frame)
		if !ok || d.Dst != rtpDst || len(d.Payload) < 8 {
			return link.Pass
		}
		seq := frames.SeqOf(d.Payload)
		transit := lan.Clock.Elapsed() - time.Duration(seq)*rtpInterval
		if run.received > 0 {
			diff := float64(transit - prevTransit)
			if diff < 0 {
				diff = -diff
			}
			jitter += (diff - jitter) / 16
			jitterSum += jitter
		}
		prevTransit = transit
		run.received++
		run.maxDelay = max(run.maxDelay, transit)
		highest = max(highest, seq)
		return link.Pass
	})

	if capRate > 0 && !defaultBuffer {
		// What serve does with --p2sp-down-rate.
		if err := p2sp.LimitReceiveBuffer(terminal.Stack, client.ReceiveBuffer(capRate)); err != nil {
			t.Fatal(err)
		}
	}
	var xfer *simapp.TCPTransfer
	if fetch {
		// More than the link can move in the run: the fetch never ends.
		size := coexistLink / 8 * int(coexistDuration/time.Second) * 3 / 2
		xfer, err = simapp.NewTCPTransfer(upstream.Stack, terminal.Stack, netip.AddrPortFrom(frames.V4(2), 8080), size, seed)
		if err != nil {
			t.Fatal(err)
		}
		defer xfer.Close()
		if capRate > 0 {
			lim := client.NewDownloadLimiter(capRate)
			var next time.Time
			xfer.ReadLimit = func() int {
				if lan.Clock.Now().Before(next) {
					return 0
				}
				return lim.Burst()
			}
			xfer.OnRead = func(n int) {
				now := lan.Clock.Now()
				next = now.Add(lim.ReserveN(now, n).DelayFrom(now))
			}
		}
	}
	const drain = 200 * time.Millisecond
	for now := time.Duration(0); now < coexistDuration+drain; now = lan.Clock.Elapsed() {
		if now < coexistDuration {
			voice.Step(now)
		}
		if xfer != nil {
			xfer.Step()
			if xfer.Err != nil {
				t.Fatal(xfer.Err)
			}
		}
		lan.Clock.Settle()
		lan.Run(time.Millisecond)
	}
	if voice.Err != nil {
		t.Fatal(voice.Err)
	}
	run.sent = voice.Sent
	run.lost = int64(voice.Sent) - int64(run.received)
	run.lastJitter = time.Duration(jitter)
	if run.received > 1 {
		run.jitter = time.Duration(jitterSum / float64(run.received-1))
	}
	if xfer != nil {
		run.fetched = xfer.Received()
	}
	return run
}

func (r coexistRun) String() string {
	s := fmt.Sprintf("RTP %d/%d received, %d lost, jitter %v (mean; %v at the end), max one-way delay %v",
		r.received, r.sent, r.lost, r.jitter.Round(time.Microsecond), r.lastJitter.Round(time.Microsecond), r.maxDelay)
	if r.fetched > 0 {
		s += fmt.Sprintf(", fetch %.2f Mbit/s", float64(r.fetched)*8/coexistDuration.Seconds()/1e6)
	}
	return s
}

// TestCoexistence: a terminal fetching at its download cap (8 Mbit/s on a
// 10 Mbit/s link) keeps its voice stream whole: no loss, and jitter
// within 1 ms of an idle run. Without the cap the download fills the
// link's queue and the voice suffers, and so it does with the cap but
// netstack's default receive buffer (the window opens in bursts): the
// test sees starvation when there is some. The run is deterministic: the
// same seed gives the same figures, asserted exactly.
func TestCoexistence(t *testing.T) {
	const seed = 1
	idle := runCoexist(t, seed, false, 0, false)
	capped := runCoexist(t, seed, true, coexistCap, false)
	t.Logf("idle:                            %v", idle)
	t.Logf("fetch at 8 Mbit/s:               %v", capped)
	if idle.lost != 0 || capped.lost != 0 {
		t.Errorf("RTP lost %d idle, %d during the capped fetch; want 0", idle.lost, capped.lost)
	}
	if d := capped.jitter - idle.jitter; d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("RTP jitter %v during the capped fetch, %v idle: more than 1 ms apart", capped.jitter, idle.jitter)
	}
	if capped.fetched < coexistCap*int(coexistDuration/time.Second)*95/100 {
		t.Errorf("the capped fetch moved %d bytes in %v: not at its cap of %d B/s", capped.fetched, coexistDuration, coexistCap)
	}

	t.Run("starvation", func(t *testing.T) {
		uncapped := runCoexist(t, seed, true, 0, false)
		bursty := runCoexist(t, seed, true, coexistCap, true)
		t.Logf("fetch without a cap:             %v", uncapped)
		t.Logf("fetch at 8 Mbit/s, default rcvbuf: %v", bursty)
		for _, r := range []struct {
			name string
			run  coexistRun
		}{{"without a cap", uncapped}, {"at the cap with the default receive buffer", bursty}} {
			if r.run.lost == 0 && r.run.jitter-idle.jitter <= time.Millisecond {
				t.Errorf("fetch %s: %v; want RTP loss or jitter over 1 ms above idle (the harness must see starvation)", r.name, r.run)
			}
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		// The figures of seed 1, as first measured; a change to the stack,
		// the sim or the cap that moves them shows here.
		want := coexistRun{sent: 1000, received: 1000, jitter: 832087, lastJitter: 974520, maxDelay: 9184000, fetched: 20193188}
		if capped != want {
			t.Errorf("seed %d: %+v, want %+v", seed, capped, want)
		}
		if again := runCoexist(t, seed, true, coexistCap, false); again != capped {
			t.Errorf("the same seed gave %+v, then %+v", capped, again)
		}
	})
}
