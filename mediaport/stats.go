package mediaport

import (
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
