package fastfilter

import (
	"net/netip"
	"sync"
	"time"

	"github.com/mediastack/mediastack/internal/csum"
)

// ReceiveFunc is called with every datagram that arrives for a registered
// port, whichever lane it took. It runs on the link's receive goroutine (fast
// lane) or netstack's delivery goroutine (netstack lane), possibly
// concurrently for different frames, and must not block: copy the payload
// somewhere (Ring.Receive does) and return.
//
// d and d.Payload are valid only during the call and must not be retained.
type ReceiveFunc func(d *Datagram)

// Datagram is one UDP datagram for a registered port.
type Datagram struct {
	// Payload is the UDP payload. It aliases the received frame (fast
	// lane) or a scratch buffer (netstack lane): copy it, do not keep it.
	Payload []byte
	// Src is the sender's address and port.
	Src netip.AddrPort
	// Dst is the stack's address and the registered port it was sent to.
	Dst netip.AddrPort
	// Version is the IP version, 4 or 6.
	Version uint8
	// ViaNetstack is true for datagrams that went through netstack (IPv4
	// fragments, IP options, IPv6 extension headers, ...) and were read from
	// the netstack endpoint bound on the port.
	ViaNetstack bool

	at   time.Time  // the receive time when known without a clock read
	port *portEntry // counters (and filter) of the port it arrived on

	// verify is set while the UDP checksum is still to be verified over
	// Payload, from partialSum (the pseudo-header and UDP header). The
	// filter hands such a datagram to a Ring, which verifies while it
	// copies, and verifies it itself for any other ReceiveFunc.
	verify     bool
	partialSum uint16
}

// verifyFrom marks d's checksum as still to be verified, from the sum of its
// pseudo-header and header.
func (d *Datagram) verifyFrom(partialSum uint16) {
	d.verify = true
	d.partialSum = partialSum
}

// checksumValid reports whether d needs no verification or passes it.
func (d *Datagram) checksumValid() bool {
	return !d.verify || csum.Checksum(d.Payload, d.partialSum) == 0xffff
}

// ReceivedAt returns when the datagram arrived, on the filter's clock
// (Options.Clock).
//
// The time is read when asked, not for every datagram: a clock read costs
// 20 to 30 ns here, a good part of the fast path, and most receivers
// (relays, net.PacketConn users) never look. The ReceiveFunc runs
// synchronously while the datagram is received, so the time read during the
// call is its receive time: call ReceivedAt during the call, as d is valid
// only then. A datagram from the netstack lane carries the time netstack
// stamped when its UDP endpoint queued it (on the stack's clock). A Datagram
// built by hand, which came through no filter, returns time.Now().
func (d *Datagram) ReceivedAt() time.Time {
	switch {
	case !d.at.IsZero():
		return d.at
	case d.port != nil:
		f := d.port.filter
		return f.now(f.snap.Load())
	default:
		return time.Now()
	}
}

// ReportBufferFull records that the ReceiveFunc dropped d for lack of room,
// so the filter's counters show the loss. Ring.Receive calls it; custom
// ReceiveFuncs that drop should too.
func (d *Datagram) ReportBufferFull() {
	if d.port != nil {
		d.port.filter.count(d.port, dropBufferFull)
	}
}

// datagramPool recycles the Datagrams handed to ReceiveFuncs: a pointer
// handed to an unknown function escapes, so a stack-allocated Datagram would
// cost an allocation per packet.
var datagramPool = sync.Pool{New: func() any { return new(Datagram) }}

func getDatagram() *Datagram { return datagramPool.Get().(*Datagram) }

func putDatagram(d *Datagram) {
	*d = Datagram{} // drop references that would keep memory alive
	datagramPool.Put(d)
}
