package fastfilter

import (
	"fmt"
	"sync/atomic"

	"github.com/mediastack/mediastack/internal/counts"
)

// counter indexes a counterSet.
type counter uint8

const (
	fastDelivered counter = iota
	netstackDelivered

	passNotIP
	passNotUDP
	passNotLocal
	passNotRegistered
	passFragment
	passIPOptions
	passUnusual
	passMalformed

	dropNotOurs
	dropTruncated
	dropBadLength
	dropBadChecksum
	dropBufferFull
	dropMartian
	dropBroadcast

	numCounters
)

// counterSet holds live atomic counters: one set for the filter, one per
// registered port.
type counterSet [numCounters]atomic.Uint64

func (cs *counterSet) snapshot() Counters {
	var v [numCounters]uint64
	for i := range cs {
		v[i] = cs[i].Load()
	}
	c := Counters{
		FastDelivered:     v[fastDelivered],
		NetstackDelivered: v[netstackDelivered],
		Passed: PassedCounters{
			NotIP:         v[passNotIP],
			NotUDP:        v[passNotUDP],
			NotLocal:      v[passNotLocal],
			NotRegistered: v[passNotRegistered],
			Fragment:      v[passFragment],
			IPOptions:     v[passIPOptions],
			Unusual:       v[passUnusual],
			Malformed:     v[passMalformed],
		},
		Dropped: DroppedCounters{
			NotOurs:     v[dropNotOurs],
			Truncated:   v[dropTruncated],
			BadLength:   v[dropBadLength],
			BadChecksum: v[dropBadChecksum],
			BufferFull:  v[dropBufferFull],
			Martian:     v[dropMartian],
			Broadcast:   v[dropBroadcast],
		},
	}
	c.ToNetstack = c.Passed.Total()
	return c
}

// Counters is a snapshot of what the filter did, for the whole filter or for
// one registered port. For a port, the pass reasons that are known before
// the port is (NotIP, NotUDP, NotLocal, NotRegistered, Malformed) and
// Dropped.NotOurs are always zero, and Passed counts only frames whose port
// could be read (an IPv4 first fragment, a datagram with IP options).
type Counters struct {
	// FastDelivered counts datagrams handed to a ReceiveFunc by the fast
	// lane, straight from the link.
	FastDelivered uint64
	// NetstackDelivered counts datagrams handed to a ReceiveFunc by the
	// netstack lane: read from the endpoint bound on a registered port.
	NetstackDelivered uint64
	// ToNetstack counts frames passed on to netstack (the sum of Passed).
	ToNetstack uint64
	Passed     PassedCounters
	Dropped    DroppedCounters
}

// PassedCounters count frames passed on to netstack, by reason.
type PassedCounters struct {
	NotIP         uint64 // ARP, other ethertypes, other VLANs
	NotUDP        uint64 // TCP, ICMP, ...
	NotLocal      uint64 // destination is not one of the stack's unicast addresses
	NotRegistered uint64 // UDP to a port with no registration
	Fragment      uint64 // IPv4 fragments, IPv6 fragment header
	IPOptions     uint64 // IPv4 options, IPv6 extension headers
	Unusual       uint64 // legal but odd: an IPv4 class E (240/4) source
	Malformed     uint64 // too short or inconsistent to tell whether it is ours
}

// Total is the sum of all reasons.
func (p PassedCounters) Total() uint64 {
	return p.NotIP + p.NotUDP + p.NotLocal + p.NotRegistered + p.Fragment + p.IPOptions + p.Unusual + p.Malformed
}

// DroppedCounters count frames and datagrams dropped, by reason. Frames for
// a registered port that fail a soundness check are dropped here, never
// delivered and never passed on.
type DroppedCounters struct {
	NotOurs     uint64 // unicast to another MAC (no NIC would take it)
	Truncated   uint64 // the frame holds less than the IP or UDP length says
	BadLength   uint64 // inconsistent length fields (UDP length < 8, ...)
	BadChecksum uint64 // IPv4 header or UDP checksum wrong
	BufferFull  uint64 // the ReceiveFunc had no room (Datagram.ReportBufferFull)
	// Martian counts datagrams for a registered port from a source no
	// host sends from (RFC 1122 3.2.1.3, RFC 4291 2.5.5.2): unspecified,
	// loopback, multicast or broadcast, IPv4-mapped, or one of the stack's
	// own addresses (a spoof or a loop). Linux drops them too (its
	// "martian source" log).
	Martian uint64
	// Broadcast counts datagrams sent to a broadcast or multicast address
	// (the all-nodes group included), dropped by the netstack lane of a
	// port that did not ask for them (Registration.SetAcceptBroadcast).
	Broadcast uint64
}

// Total is the sum of all reasons.
func (d DroppedCounters) Total() uint64 {
	return d.NotOurs + d.Truncated + d.BadLength + d.BadChecksum + d.BufferFull + d.Martian + d.Broadcast
}

// Add returns the field-wise sum of c and o.
func (c Counters) Add(o Counters) Counters {
	c.FastDelivered += o.FastDelivered
	c.NetstackDelivered += o.NetstackDelivered
	c.ToNetstack += o.ToNetstack
	c.Passed.NotIP += o.Passed.NotIP
	c.Passed.NotUDP += o.Passed.NotUDP
	c.Passed.NotLocal += o.Passed.NotLocal
	c.Passed.NotRegistered += o.Passed.NotRegistered
	c.Passed.Fragment += o.Passed.Fragment
	c.Passed.IPOptions += o.Passed.IPOptions
	c.Passed.Unusual += o.Passed.Unusual
	c.Passed.Malformed += o.Passed.Malformed
	c.Dropped.NotOurs += o.Dropped.NotOurs
	c.Dropped.Truncated += o.Dropped.Truncated
	c.Dropped.BadLength += o.Dropped.BadLength
	c.Dropped.BadChecksum += o.Dropped.BadChecksum
	c.Dropped.BufferFull += o.Dropped.BufferFull
	c.Dropped.Martian += o.Dropped.Martian
	c.Dropped.Broadcast += o.Dropped.Broadcast
	return c
}

// String lists the counts by name and the reasons with a count, e.g.
// "fast 2060, via netstack 0, passed to netstack 12 (not-ip 8, not-udp 4),
// dropped 0 (none)".
func (c Counters) String() string {
	return fmt.Sprintf("fast %d, via netstack %d, passed to netstack %d (%v), dropped %d (%v)",
		c.FastDelivered, c.NetstackDelivered, c.ToNetstack, c.Passed, c.Dropped.Total(), c.Dropped)
}

// String lists the reasons with a count, e.g. "not-ip 8, not-udp 4";
// "none" when every count is zero.
func (p PassedCounters) String() string {
	return counts.Named([]string{"not-ip", "not-udp", "not-local", "not-registered", "fragment", "ip-options", "unusual", "malformed"},
		[]uint64{p.NotIP, p.NotUDP, p.NotLocal, p.NotRegistered, p.Fragment, p.IPOptions, p.Unusual, p.Malformed})
}

// String lists the reasons with a count, e.g. "buffer-full 3"; "none" when
// every count is zero.
func (d DroppedCounters) String() string {
	return counts.Named([]string{"not-ours", "truncated", "bad-length", "bad-checksum", "buffer-full", "martian", "broadcast"},
		[]uint64{d.NotOurs, d.Truncated, d.BadLength, d.BadChecksum, d.BufferFull, d.Martian, d.Broadcast})
}
