package mediaport

import (
	"fmt"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/udpfast"
)

// PortStats is a snapshot of what one port did.
type PortStats struct {
	Port uint16
	// Receive counts the port's datagrams by lane and its drops
	// (fastfilter's per-port counters).
	Receive fastfilter.Counters
	// Buffered counts datagrams stored in the port's buffer and read from
	// it (zero for OpenFunc ports). Buffer-full drops are in
	// Receive.Dropped.BufferFull.
	Buffered, Read uint64
	// Send counts datagrams sent fast and through netstack, by reason,
	// over every source address the port sent from.
	Send udpfast.Stats
}

// String prints every count by name, reasons too, e.g. "port 20000:
// receive fast 5, via netstack 0, passed to netstack 0 (none), dropped 0
// (none); buffered 5, read 5; send fast 4 in 4 link writes (0 trains),
// through netstack 1 (no-entry 1), refused by netstack 0".
func (s PortStats) String() string {
	return fmt.Sprintf("port %d: receive %v; buffered %d, read %d; send %v", s.Port, s.Receive, s.Buffered, s.Read, s.Send)
}

// Stats returns the port's counters. It takes no lock.
func (p *Port) Stats() PortStats {
	s := PortStats{Port: p.port, Receive: p.reg.PortCounters(p.port), Send: p.sendStats()}
	if p.ring != nil {
		rs := p.ring.Stats()
		s.Buffered, s.Read = rs.Enqueued, rs.Read
	}
	return s
}

func (p *Port) sendStats() udpfast.Stats {
	var st udpfast.Stats
	if senders := p.senders.Load(); senders != nil {
		for _, s := range *senders {
			st = st.Add(s.Stats())
		}
	}
	return st
}

// Stats is a snapshot of what a Manager's fast paths did since it was
// made. Counts only grow: closed ports' counts stay in.
type Stats struct {
	// OpenPorts is how many ports are open now.
	OpenPorts int
	// Receive is the fast filter's totals for the NIC: datagrams delivered
	// by each lane, frames passed on to netstack and dropped, by reason.
	Receive fastfilter.Counters
	// Send sums every port's sends: fast, and through netstack by reason.
	Send udpfast.Stats
	// NetstackRxPackets counts the frames netstack received on the NIC:
	// everything the filter passed on (ARP, NDP, ICMP, TCP, other UDP,
	// fragments), none of the fast-path datagrams.
	NetstackRxPackets uint64
	// ARP is the policy ARP table's counters; ARPEntries counts its
	// entries by state now.
	ARP        policyarp.Stats
	ARPEntries map[policyarp.State]int
}

// String prints every count by name, reasons and ARP entry states too, in
// the order of the fields: "open ports 2; receive ...; send ...; netstack
// received 12 frames; arp {Resolutions:2 ...}, entries map[valid:2]".
func (s Stats) String() string {
	return fmt.Sprintf("open ports %d; receive %v; send %v; netstack received %d frames; arp %+v, entries %v",
		s.OpenPorts, s.Receive, s.Send, s.NetstackRxPackets, s.ARP, s.ARPEntries)
}

// Stats returns the manager's counters. It takes the manager's lock and
// walks the open ports and the ARP table: call it for metrics, not per
// packet.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	st := Stats{OpenPorts: m.open, Send: m.retired}
	for _, p := range m.ports {
		if p != nil {
			st.Send = st.Send.Add(p.sendStats())
		}
	}
	m.mu.Unlock()
	st.Receive = m.filter.Counters()
	if info, ok := m.st.Netstack().SingleNICInfo(m.nic); ok {
		st.NetstackRxPackets = info.Stats.Rx.Packets.Value()
	}
	st.ARP = m.table.Stats()
	st.ARPEntries = make(map[policyarp.State]int)
	for _, e := range m.table.Snapshot() {
		st.ARPEntries[e.State]++
	}
	return st
}
