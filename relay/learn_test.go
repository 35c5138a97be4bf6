package relay_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/relay"
)

// The terminals of a call: the caller T1 (side A, SDP 198.51.100.1:20010,
// which its NAT may rebind to 20011), the callee T2 (side B, SDP
// 198.51.100.3:20020) and a stranger T3.
var (
	caller   = ap("198.51.100.1:20010")
	natted   = ap("198.51.100.1:20011")
	callee   = ap("198.51.100.3:20020")
	stranger = ap("198.51.100.4:20030")
	portA    = ap("198.51.100.2:20000")
	portB    = ap("198.51.100.2:20002")
)

// sipCall is a relay between the caller and the callee, with every terminal
// port open.
type sipCall struct {
	l     *lan
	s     *relay.Service
	r     *relay.Relay
	ports map[netip.AddrPort]*mediaport.Port
	seq   map[uint32]uint16
}

const (
	callerSSRC   = 0x1111
	calleeSSRC   = 0x2222
	strangerSSRC = 0x3333
)

func newCall(t *testing.T, spec relay.Spec) *sipCall {
	t.Helper()
	l := newLAN(t)
	c := &sipCall{l: l, s: l.service(t, false), ports: map[netip.AddrPort]*mediaport.Port{}, seq: map[uint32]uint16{}}
	for i, m := range l.t {
		for _, a := range []netip.AddrPort{caller, natted, callee, stranger} {
			if a.Addr() == ap([]string{"198.51.100.1:1", "198.51.100.3:1", "198.51.100.4:1"}[i]).Addr() {
				c.ports[a] = simlan.Open(t, m, a.Port())
			}
		}
	}
	spec.Ports = [2]uint16{20000, 20002}
	spec.Peers = [2]netip.AddrPort{caller, callee}
	var err error
	if c.r, err = c.s.Create(spec); err != nil {
		t.Fatal(err)
	}
	return c
}

// send sends n RTP packets of ssrc from src to the relay port to, 20 ms
// apart, sequence numbers running on per SSRC.
func (c *sipCall) send(t *testing.T, src, to netip.AddrPort, ssrc uint32, n int) {
	t.Helper()
	for range n {
		seq := c.seq[ssrc]
		c.seq[ssrc]++
		sendBytes(t, c.ports[src], to, rtpPacket(t, 0, seq, uint32(seq)*160, ssrc))
		c.l.Run(20 * time.Millisecond)
	}
}

// got returns how many datagrams terminal port a received since the last
// call.
func (c *sipCall) got(t *testing.T, a netip.AddrPort) int {
	t.Helper()
	return len(simlan.Drain(t, c.ports[a]))
}

var modes = []relay.Learning{relay.LearnDelayed, relay.LearnImmediate, relay.LearnHeuristic, relay.LearnOff}

// eachMode runs f as a subtest for every learning mode, without and with
// strict source.
func eachMode(t *testing.T, f func(t *testing.T, mode relay.Learning, strict bool)) {
	for _, mode := range modes {
		for _, strict := range []bool{false, true} {
			t.Run(mode.String()+map[bool]string{false: "", true: "/strict"}[strict], func(t *testing.T) { f(t, mode, strict) })
		}
	}
}

// TestHijackFails (issue 13): a stranger sends one datagram to the
// caller's side before the caller does. In every learning mode, with or
// without strict source, the caller has its side once it speaks: its
// media flows to the callee, the callee's to it, and the stranger gets
// nothing and can inject nothing more.
func TestHijackFails(t *testing.T) {
	eachMode(t, func(t *testing.T, mode relay.Learning, strict bool) {
		c := newCall(t, relay.Spec{Learning: mode, StrictSource: strict})
		c.send(t, stranger, portA, strangerSSRC, 1)
		c.send(t, caller, portA, callerSSRC, 10)
		c.send(t, callee, portB, calleeSSRC, 10)
		c.send(t, stranger, portA, strangerSSRC, 5)
		// Immediate learning trusts the first datagram: the
		// stranger's goes through, and is the only one.
		injected := 0
		if mode == relay.LearnImmediate {
			injected = 1
		}
		if got := c.got(t, callee); got != 10+injected {
			t.Errorf("the callee received %d packets, want the caller's 10 and %d of the stranger's", got, injected)
		}
		if got := c.got(t, caller); got != 10 {
			t.Errorf("the caller received %d of the callee's 10 packets", got)
		}
		if got := c.got(t, stranger); got != 0 {
			t.Errorf("the stranger received %d packets", got)
		}
		sd := c.r.Info().Sides[0]
		if sd.Peer != caller || sd.State != relay.PeerLearned || sd.ForeignSource != uint64(6-injected) {
			t.Errorf("side A: peer %v %v, %d foreign; want the caller, learned, %d foreign", sd.Peer, sd.State, sd.ForeignSource, 6-injected)
		}
	})
}

// TestHijackBeforeCallerSpeaks: the callee's media starts before the
// caller's, after the stranger's datagram. Only immediate learning gives
// the stranger the callee's media, and only until the caller speaks.
func TestHijackBeforeCallerSpeaks(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := newCall(t, relay.Spec{Learning: mode})
			c.send(t, stranger, portA, strangerSSRC, 1)
			c.send(t, callee, portB, calleeSSRC, 5)
			c.send(t, caller, portA, callerSSRC, 1)
			c.send(t, callee, portB, calleeSSRC, 5)
			toStranger, toCaller := 0, 5
			if mode == relay.LearnImmediate {
				toStranger, toCaller = 5, 0
			}
			if got := c.got(t, stranger); got != toStranger {
				t.Errorf("the stranger received %d packets, want %d", got, toStranger)
			}
			if got := c.got(t, caller); got != toCaller+5 {
				t.Errorf("the caller received %d packets, want %d", got, toCaller+5)
			}
		})
	}
}

// TestNATRebinding: mid-call, the caller's NAT moves it to another port.
// Its stream (same SSRC) is followed after HandoverPackets packets in
// every mode but off and strict source, where it stays dropped.
func TestNATRebinding(t *testing.T) {
	eachMode(t, func(t *testing.T, mode relay.Learning, strict bool) {
		c := newCall(t, relay.Spec{Learning: mode, StrictSource: strict})
		c.send(t, caller, portA, callerSSRC, 5)
		c.send(t, callee, portB, calleeSSRC, 5)
		c.got(t, callee)
		c.got(t, caller)
		c.send(t, natted, portA, callerSSRC, 10)
		c.send(t, callee, portB, calleeSSRC, 5)
		follow := mode != relay.LearnOff && !strict
		wantCallee, wantNatted, wantPeer := 0, 0, caller
		if follow {
			wantCallee, wantNatted, wantPeer = 10-relay.HandoverPackets+1, 5, natted
		}
		if got := c.got(t, callee); got != wantCallee {
			t.Errorf("the callee received %d of the rebound caller's 10 packets, want %d", got, wantCallee)
		}
		if got := c.got(t, natted); got != wantNatted {
			t.Errorf("the caller's new port received %d of the callee's 5 packets, want %d", got, wantNatted)
		}
		if got := c.r.Info().Sides[0]; got.Peer != wantPeer || got.State != relay.PeerLearned {
			t.Errorf("side A's peer %v %v, want %v learned", got.Peer, got.State, wantPeer)
		}
	})
}

// TestStrangerWithAnotherSSRC: a stranger streaming while the learned
// caller is silent never takes its side: its SSRC is not the caller's.
func TestStrangerWithAnotherSSRC(t *testing.T) {
	c := newCall(t, relay.Spec{})
	c.send(t, caller, portA, callerSSRC, 3)
	c.send(t, stranger, portA, strangerSSRC, 100)
	c.send(t, callee, portB, calleeSSRC, 3)
	if got := c.got(t, callee); got != 3 {
		t.Errorf("the callee received %d packets, want the caller's 3", got)
	}
	if got, stranger := c.got(t, caller), c.got(t, stranger); got != 3 || stranger != 0 {
		t.Errorf("the caller received %d packets (want 3), the stranger %d (want 0)", got, stranger)
	}
}

// TestLearnBehindNAT: the caller's SDP says 20010 but its media comes from
// 20011 (a NAT). Delayed learning takes it after HandoverPackets packets,
// heuristic (same address) and immediate at once, off never.
func TestLearnBehindNAT(t *testing.T) {
	for _, tc := range []struct {
		mode    relay.Learning
		relayed int
	}{
		{relay.LearnDelayed, 10 - relay.HandoverPackets + 1},
		{relay.LearnImmediate, 10},
		{relay.LearnHeuristic, 10},
		{relay.LearnOff, 0},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			c := newCall(t, relay.Spec{Learning: tc.mode})
			c.send(t, natted, portA, callerSSRC, 10)
			if got := c.got(t, callee); got != tc.relayed {
				t.Errorf("the callee received %d packets, want %d", got, tc.relayed)
			}
			c.send(t, callee, portB, calleeSSRC, 4)
			to := natted
			if tc.mode == relay.LearnOff {
				to = caller
			}
			if got := c.got(t, to); got != 4 {
				t.Errorf("%v received %d of the callee's 4 packets", to, got)
			}
		})
	}
}

// TestSetPeer: an answer gives side B's peer after the relay was made
// with B unknown; media then goes to it, and a changed peer restarts
// learning.
func TestSetPeer(t *testing.T) {
	c := newCall(t, relay.Spec{})
	if err := c.r.SetPeer(1, stranger, netip.AddrPort{}, false); err != nil {
		t.Fatal(err)
	}
	c.send(t, caller, portA, callerSSRC, 2)
	if got := c.got(t, stranger); got != 2 {
		t.Errorf("the new peer received %d packets, want 2", got)
	}
	if got := c.r.Info().Sides[1]; got.Expected != stranger || got.State != relay.PeerExpected || !got.Fixed {
		t.Errorf("side B: %+v", got)
	}
	if err := c.r.SetPeer(2, caller, netip.AddrPort{}, false); err == nil {
		t.Error("SetPeer(2, ...) accepted side 2")
	}
	if err := c.s.SetPeer(c.r.ID(), 0, ap("[2001:db8::1]:0"), netip.AddrPort{}, false); err == nil {
		t.Error("SetPeer accepted port 0")
	}
}
