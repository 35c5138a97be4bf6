// Package policyarp is the ARP table keyed by local UDP port that the fast
// send path (udpfast) reads on every datagram. It answers one question
// without a lock or an allocation: "may the datagram this port is about to
// send to dst go out as a raw frame, and to which MAC?" docs/design.md shows
// where it sits in the data path.
//
// # Layout: a set of destinations per local port
//
// A Table covers a contiguous range of local ports on one netstack NIC (the
// RTP/RTCP range the application registered with fastfilter). Slot i belongs
// to port BasePort+i, so finding the port is an array index. A slot holds
// the port's destinations: four cells in place, found by a scan, then an
// open-addressing hash set that is replaced whole (copy on write) when a
// destination is added or evicted, so readers never lock; an entry's
// updates are stored in its cell without copying the set. Each destination
// (Dest) holds an immutable Entry: the destination IP, the next hop, the
// next hop's MAC, the time netstack last confirmed that MAC, a State and a
// path MTU; and each has its own aging and refresh. A port sending to many
// peers in turn (Pion's ICE UDP mux, an SFU fanning out, a reflector
// answering several sources) stays on the fast path after each peer's
// first datagram.
//
// The set is bounded by Options.MaxDestinations (DefaultMaxDestinations,
// 64): one more destination evicts the least recently used, preferring
// entries that cannot be used anyway, counted in Stats.Evictions. Recency
// is kept by the refresh round (a destination loaded since the last round
// is stamped with the round's number), so the send path only sets a flag.
// Every Dest has an Index below MaxDestinations, which senders use to keep
// per-destination state (udpfast keeps a header template per index).
//
// There is one set per port, not one per RTP/RTCP pair, because:
//   - the RTCP port of a session need not send to the RTP peer's address
//     (SDP a=rtcp, RFC 3605, may name another host), so a shared entry would
//     have to hold two destinations or flap between them;
//   - RTP and RTCP are usually sent from different goroutines (media clock
//     vs. report timer); one entry per port keeps one writer per slot;
//   - the lookup stays a plain index with no parity rule, and rtcp-mux
//     (RFC 5761) sessions, which use a single port, need nothing special.
//
// The price is one extra slot per RTCP port; both ports' entries resolve the
// same next hop through netstack's neighbour cache, so the wire sees no
// extra ARP traffic.
//
// # Where MACs come from
//
// Only from netstack's own neighbour resolution (docs/design.md, decision 5):
// Stack.GetLinkAddress with its on-resolve callback. Resolve finds the next
// hop once, when the entry is made: the destination itself when it is on-link,
// else the gateway of netstack's route, via Stack.FindRoute. When netstack
// knows the MAC already (the callback runs before GetLinkAddress returns),
// the entry Resolve returns is Valid at once and the datagram that asked can
// go fast. Static entries (SetStatic) are installed as netstack static
// neighbours too, so both lanes of a port always agree on the MAC.
//
// # Announcements (gratuitous ARP, unsolicited NA)
//
// An announcement (reported by fastfilter through HandleNeighborUpdate) is
// unauthenticated: it can only invalidate entries, never install a MAC, and
// the next datagram goes through netstack, which decides. The rules:
//
//   - An announcement of the MAC the entries already hold changes nothing:
//     hosts repeat announcements (keepalived, VRRP, arping -U loops), and a
//     host announcing itself every 2 ms used to push most of a stream onto
//     netstack (Stats.AnnouncedSame).
//   - An announcement of another MAC invalidates the entries of that next
//     hop, at most once per destination per Options.AnnounceInterval
//     (default 1s). One that comes sooner is held back and looked at again
//     when the interval ends (Stats.AnnounceDeferred): a real failover is
//     followed within a second, and a flood of changing announcements costs
//     each destination at most one fallback per second.
//   - gVisor ignores gratuitous ARP requests and will not let a gratuitous
//     reply override a cached MAC, so when netstack's neighbour holds
//     another MAC, HandleNeighborUpdate also removes netstack's dynamic
//     entry (at most once per interval, never one still resolving): netstack
//     then resolves the address afresh and learns the MAC from the
//     solicited reply, not from the announcement. (An unsolicited NA with
//     the Override flag does move netstack's entry, as in Linux, RFC 4861
//     section 7.2.5.)
//   - A unicast ARP request or Neighbor Solicitation with a forged sender
//     moves netstack's entry (Linux does the same); the refresh carries the
//     new MAC to the fast path within Options.Refresh.
//
// Every MAC change the fast path follows is counted by what revealed it
// (Stats.MACChangesBy: resolve, refresh, gratuitous-arp, unsolicited-na,
// static), per entry, and logged at info level on Options.Logger with the
// old and the new MAC, once per change of a next hop, however many entries
// use it.
//
// # Path MTU
//
// HandlePacketTooBig (fed by fastfilter's SubscribePacketTooBig with ICMPv4
// "fragmentation needed" and ICMPv6 "packet too big" about a datagram one of
// our ports sent) lowers the PathMTU of that port's entry for that
// destination, never below 576 (IPv4) or 1280 (IPv6) and never up. Senders
// send larger datagrams through netstack. After Options.PathMTUExpiry
// (default 10 minutes, Linux's mtu_expires) the lowered MTU expires and the
// link MTU is tried again. The path MTU belongs to the destination, not to
// its next hop: it survives the entry's re-resolutions.
//
// # Aging and refresh
//
// An entry is used only while it is younger
// than Options.Aging (--arp-aging, default 10s). Aging is enforced by a timer
// on the injected tcpip.Clock, so the send path never reads the clock. Every
// Options.Refresh (--arp-refresh, default 1s) a timer re-validates the entries
// used since the previous round against netstack's neighbour cache
// (GetLinkAddress), which also drives netstack's NUD state machine for
// traffic netstack never sees: a STALE neighbour moves to DELAY and then
// PROBE exactly as if netstack had sent the datagram itself. So an active
// stream never ages out, while an idle entry ages and its next datagram goes
// through netstack again. The refresh timer runs only while some
// destination is in use (or a lowered path MTU waits to expire) and visits
// only the ports used since its last round: idle, the table wakes nobody,
// however many ports it covers.
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
//	filter.SubscribePacketTooBig(table.HandlePacketTooBig)
//
// The send path calls Slot(port).Load(dst), or Find(dst) once and then
// Dest.Load (lock-free, allocation-free); misses go through Resolve. Writers
// (resolution callbacks, the refresh and aging timers, HandleNeighborUpdate,
// HandlePacketTooBig, SetStatic) publish new immutable Entry values with an
// atomic pointer store and never call netstack while holding a slot lock, so
// netstack may call back into the table from under its own locks.
package policyarp
