package udpfast

import (
	"fmt"
	"sync/atomic"

	"github.com/mediastack/mediastack/internal/counts"
	"github.com/mediastack/mediastack/internal/relaxed"
)

// Reason is why a datagram went through netstack instead of the fast path.
type Reason uint8

const (
	// ReasonNoEntry: the port had no policy ARP entry for the destination
	// yet (its first datagram there), and netstack did not know the next
	// hop's MAC either.
	ReasonNoEntry Reason = iota
	// ReasonDstChanged: the port had no entry for the destination and its
	// set of destinations was full (it sends to more than the table's
	// MaxDestinations peers in turn; each new one evicts the least recently
	// used), or the entry was made for another of the port's source
	// addresses.
	ReasonDstChanged
	// ReasonUnresolved: netstack is still resolving the next hop's MAC.
	ReasonUnresolved
	// ReasonAged: the entry reached the aging time unconfirmed.
	ReasonAged
	// ReasonInvalidated: a gratuitous ARP or unsolicited NA named the next hop.
	ReasonInvalidated
	// ReasonUnreachable: netstack's last resolution of the next hop failed.
	ReasonUnreachable
	// ReasonUnsupported: the destination cannot go fast (multicast,
	// broadcast, local, or not routed through this NIC).
	ReasonUnsupported
	// ReasonTooBig: the datagram does not fit the link MTU unfragmented
	// (netstack fragments it at the link MTU), or is too big for IP. A
	// datagram too big only for a path MTU a router lowered
	// (policyarp.Entry.PathMTU) goes fast in fragments (Stats.Fragmented).
	ReasonTooBig
	// ReasonQueueFull: the link's transmit queue was full.
	ReasonQueueFull
	// ReasonLinkError: the link refused the frame for another reason.
	ReasonLinkError

	// NumReasons is the number of reasons (the length of ReasonCounts).
	NumReasons = int(iota)
)

var reasonNames = [NumReasons]string{
	"no-entry", "dst-changed", "unresolved", "aged", "invalidated",
	"unreachable", "unsupported", "too-big", "queue-full", "link-error",
}

func (r Reason) String() string {
	if int(r) < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// resolves reports whether a datagram turned away for r should make the
// table ask netstack for the next hop (the other reasons leave a good or
// pending entry behind).
func (r Reason) resolves() bool {
	switch r {
	case ReasonNoEntry, ReasonDstChanged, ReasonAged, ReasonInvalidated, ReasonUnreachable:
		return true
	}
	return false
}

// Stats is a snapshot of a Sender's counters.
type Stats struct {
	// Fast counts datagrams written as raw frames.
	Fast uint64
	// LinkWrites counts WriteFrames calls (a batch is one call) and UDP
	// trains written.
	LinkWrites uint64
	// Trains counts the UDP trains written for the link to cut into
	// datagrams (link.UDPSegmenter); their datagrams count in Fast.
	Trains uint64
	// Fragmented counts the datagrams of Fast sent as IP fragments
	// because a router lowered their destination's path MTU below the
	// link's (policyarp.Entry.PathMTU), each in one link write.
	Fragmented uint64
	// Fallbacks counts datagrams handed to netstack, by Reason.
	Fallbacks ReasonCounts
	// FallbackErrors counts datagrams netstack refused too (returned to the
	// caller as errors).
	FallbackErrors uint64
}

// String lists the counts by name, fallbacks by reason, e.g. "fast 2059
// in 2059 link writes (0 trains), through netstack 13 (no-entry 12,
// unresolved 1), refused by netstack 0"; ", 3 fragmented" follows the
// trains when some datagrams went as fragments.
func (s Stats) String() string {
	var fragmented string
	if s.Fragmented != 0 {
		fragmented = fmt.Sprintf(", %d fragmented", s.Fragmented)
	}
	return fmt.Sprintf("fast %d in %d link writes (%d trains%s), through netstack %d (%v), refused by netstack %d",
		s.Fast, s.LinkWrites, s.Trains, fragmented, s.FallbackTotal(), s.Fallbacks, s.FallbackErrors)
}

// ReasonCounts counts datagrams by Reason: index it with a Reason.
type ReasonCounts [NumReasons]uint64

// String lists the reasons with a count by name, in Reason order, e.g.
// "no-entry 12, unresolved 1"; "none" when every count is zero.
func (c ReasonCounts) String() string { return counts.Named(reasonNames[:], c[:]) }

// Add returns the sum of s and o, field by field (for totals over many
// senders).
func (s Stats) Add(o Stats) Stats {
	s.Fast += o.Fast
	s.LinkWrites += o.LinkWrites
	s.Trains += o.Trains
	s.Fragmented += o.Fragmented
	s.FallbackErrors += o.FallbackErrors
	for i := range s.Fallbacks {
		s.Fallbacks[i] += o.Fallbacks[i]
	}
	return s
}

// FallbackTotal is the sum of Fallbacks.
func (s Stats) FallbackTotal() uint64 {
	var n uint64
	for _, v := range s.Fallbacks {
		n += v
	}
	return n
}

// Fallback returns the count for one reason.
func (s Stats) Fallback(r Reason) uint64 { return s.Fallbacks[r] }

// counters are written by the sender's goroutine only and read by anyone:
// add is a load and a release store (relaxed.AddSingleWriter: no locked
// instruction on amd64), which is exact with a single writer.
type counters struct {
	fast, linkWrites, trains, fragmented, fallbackErrors atomic.Uint64
	fallbacks                                            [NumReasons]atomic.Uint64
}

func add(c *atomic.Uint64, n uint64) { relaxed.AddSingleWriter(c, n) }

func (c *counters) snapshot() Stats {
	s := Stats{
		Fast:           c.fast.Load(),
		LinkWrites:     c.linkWrites.Load(),
		Trains:         c.trains.Load(),
		Fragmented:     c.fragmented.Load(),
		FallbackErrors: c.fallbackErrors.Load(),
	}
	for i := range c.fallbacks {
		s.Fallbacks[i] = c.fallbacks[i].Load()
	}
	return s
}
