package policyarp

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Minimum MTUs a path may report: RFC 791's 576 for IPv4 (Linux's
// min_pmtu is lower, 552, but nothing smaller than 576 is legitimate on a
// path that carries media) and RFC 8200's 1280 for IPv6. Smaller claims are
// ignored: they are a known way to make a host send tiny fragments.
const (
	MinPathMTUv4 = 576
	MinPathMTUv6 = header.IPv6MinimumMTU
)

// HandlePacketTooBig is the hook fastfilter calls for an ICMPv4
// "fragmentation needed" or ICMPv6 "packet too big" quoting a datagram that
// port sent from local to dst (fastfilter.Filter.SubscribePacketTooBig): the
// path to dst takes IP packets of at most mtu bytes. It lowers the path MTU
// of port's entry for dst, so that larger datagrams leave in fragments of
// at most mtu (udpfast) instead of whole to a router that drops them, until
// Options.PathMTUExpiry passes (then the link MTU is tried again, as Linux
// does). Reports of an MTU below the protocol's minimum, not below what is
// known already, or about a destination the port has no entry for are
// ignored (Stats.PathMTUIgnored). Safe on a link's receive goroutine.
func (t *Table) HandlePacketTooBig(local, dst tcpip.Address, port uint16, mtu uint32) {
	s := t.Slot(port)
	proto, ok := protocolOf(local, dst)
	min := uint32(MinPathMTUv4)
	if proto == header.IPv6ProtocolNumber {
		min = MinPathMTUv6
	}
	var linkMTU uint32
	if info, found := t.ns.SingleNICInfo(t.nic); found {
		linkMTU = info.MTU
	}
	if s == nil || !ok || mtu < min || mtu >= linkMTU {
		t.c.pmtuIgnored.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.Find(dst)
	if d == nil {
		t.c.pmtuIgnored.Add(1)
		return
	}
	e := d.entry.Load()
	if e == nil || e.Dst != dst || e.Local != local || (e.PathMTU != 0 && mtu >= e.PathMTU) {
		t.c.pmtuIgnored.Add(1)
		return
	}
	n := *e
	n.PathMTU = mtu
	n.PathMTUExpires = t.clock.NowMonotonic().Add(t.pmtuExpiry)
	t.publishLocked(s, d, &n)
	t.c.pmtuUpdates.Add(1)
	t.notePathMTULowered()
}

// expirePathMTU forgets e's lowered path MTU.
func (t *Table) expirePathMTU(s *Slot, d *Dest, e *Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.entry.Load() != e {
		return // changed meanwhile; the next round looks again
	}
	n := *e
	n.PathMTU, n.PathMTUExpires = 0, tcpip.MonotonicTime{}
	t.publishLocked(s, d, &n)
	t.c.pmtuExpired.Add(1)
}

// PathMTUFor returns the IP packet size datagrams of e may reach: its path
// MTU when one was learnt, else linkMTU.
func (e *Entry) PathMTUFor(linkMTU uint32) uint32 {
	if e.PathMTU != 0 && e.PathMTU < linkMTU {
		return e.PathMTU
	}
	return linkMTU
}
