// Package policyarp is the ARP table keyed by local UDP port that the fast
// send path (udpfast) reads on every datagram. It answers one question
// without a lock or an allocation: "may the datagram this port is about to
// send to dst go out as a raw frame, and to which MAC?" docs/design.md shows
// where it sits in the data path.
//
// # Layout: one entry per local port
//
// A Table covers a contiguous range of local ports on one netstack NIC (the
// RTP/RTCP range the application registered with fastfilter). Entry i belongs
// to port BasePort+i, so a lookup is an array index. An entry holds the
// destination IP, the next hop, the next hop's MAC, the time netstack last
// confirmed that MAC and a State.
//
// There is one entry per port, not one per RTP/RTCP pair, because:
//   - the RTCP port of a session need not send to the RTP peer's address
//     (SDP a=rtcp, RFC 3605, may name another host), so a shared entry would
//     have to hold two destinations or flap between them;
//   - RTP and RTCP are usually sent from different goroutines (media clock
//     vs. report timer); one entry per port keeps one writer per slot;
//   - the lookup stays a plain index with no parity rule, and rtcp-mux
//     (RFC 5761) sessions, which use a single port, need nothing special.
//
// The price is one extra pointer-sized slot per RTCP port; both entries of a
// session resolve the same next hop through netstack's neighbour cache, so the
// wire sees no extra ARP traffic.
//
// # Where MACs come from
//
// Only from netstack's own neighbour resolution (docs/design.md, decision 5):
// Stack.GetLinkAddress with its on-resolve callback. Resolve finds the next
// hop once, when the entry is made: the destination itself when it is on-link,
// else the gateway of netstack's route, via Stack.FindRoute. A gratuitous ARP
// or unsolicited NA (reported by fastfilter through HandleNeighborUpdate) can
// only invalidate entries; the next datagram goes through netstack, which
// decides. gVisor ignores gratuitous ARP requests and will
// not let a gratuitous reply override a cached MAC, so when the announced MAC
// differs from the one netstack holds, HandleNeighborUpdate also removes
// netstack's dynamic neighbour entry: netstack then resolves the address
// afresh and learns the MAC from the solicited reply, not from the
// announcement. Static entries (SetStatic) are installed as netstack static
// neighbours too, so both lanes of a port always agree on the MAC.
//
// # Aging and refresh
//
// An entry is used only while its destination is unchanged and it is younger
// than Options.Aging (--arp-aging, default 10s). Aging is enforced by a timer
// on the injected tcpip.Clock, so the send path never reads the clock. Every
// Options.Refresh (--arp-refresh, default 1s) a timer re-validates the entries
// used since the previous round against netstack's neighbour cache
// (GetLinkAddress), which also drives netstack's NUD state machine for
// traffic netstack never sees: a STALE neighbour moves to DELAY and then
// PROBE exactly as if netstack had sent the datagram itself. So an active
// stream never ages out, while an idle entry ages and its next datagram goes
// through netstack again.
//
// The defaults follow netstack's NUD defaults (RFC 4861 section 10):
// BaseReachableTime 30s drawn with a random factor in [0.5, 1.5], so a
// REACHABLE neighbour stays REACHABLE for at least 15s; DelayFirstProbeTime
// 5s; RetransmitTimer 1s.
//   - Aging 10s is the shortest reachable time (15s) less one
//     DelayFirstProbeTime (5s): an entry nobody re-validated is never trusted
//     longer than netstack itself trusts a fresh confirmation, and when it ages
//     netstack still holds the neighbour as REACHABLE or STALE, so the one
//     datagram that meets the aged entry costs no ARP on the wire. It is also
//     twice RTCP's minimum report interval (5s, RFC 3550 section 6.2), so an
//     RTCP-only port stays on the fast path.
//   - Refresh 1s equals netstack's RetransmitTimer: netstack's verdicts (a
//     failed probe, a new MAC from a solicited reply) reach the fast path
//     within one probe interval, and an active entry is re-validated ten
//     times per aging period, so one late timer never ages it. Refresh must
//     be shorter than Aging; New rejects anything else.
//
// When a peer changes its MAC without announcing it, netstack learns the new
// one through NUD: its entry stays REACHABLE for up to 45s after the last
// confirmation, then STALE → DELAY (5s) → PROBE (3 unicast probes, 1s apart)
// → UNREACHABLE, and the refresh after that starts a broadcast resolution.
// Fast delivery therefore resumes at most about 45+5+3+1 ≈ 54s after the
// change (less when the peer itself ARPs us meanwhile), with no restart.
//
// # Plugging it in
//
//	table, err := policyarp.New(policyarp.Options{
//		Stack: st.Netstack(), NIC: st.NICID(0), BasePort: 20000, Ports: 1000,
//	})
//	defer table.Close()
//	filter.SubscribeNeighborUpdates(table.HandleNeighborUpdate) // fastfilter
//	sender, err := udpfast.New(udpfast.Options{Table: table, ...})
//
// The send path calls Slot(port).Load (lock-free, allocation-free); misses go
// through Resolve. Writers (resolution callbacks, the refresh and aging
// timers, HandleNeighborUpdate, SetStatic) publish new immutable Entry values
// with an atomic pointer store and never call netstack while holding a slot
// lock, so netstack may call back into the table from under its own locks.
package policyarp
