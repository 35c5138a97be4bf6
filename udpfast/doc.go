// Package udpfast is mediastack's fast UDP send path: it turns a datagram
// from a media port into a complete Ethernet frame and writes it straight to
// the link, below netstack's network layer, in about the time it takes to
// copy and checksum the payload. docs/design.md shows where it sits in the
// data path.
//
// A Sender owns one local address and port. For each destination it keeps a
// prebuilt Ethernet + IPv4/IPv6 + UDP header (one per destination of the
// port's policyarp set, so a port sending to many peers in turn builds each
// once) with every static field filled in and the checksums of those fields
// summed in advance; per
// datagram it copies that header and the payload into caller-owned scratch
// memory and fills in only what varies: the destination MAC when the policy
// ARP entry changed, the IP total/payload length, the IPv4 header checksum
// (incrementally, from the precomputed sum), the UDP length and the UDP
// checksum (always: mandatory for IPv6, and netstack sets it for IPv4 too).
// The IPv4 ID is 0 with DF set, as netstack sends UDP (RFC 6864 atomic
// datagrams); with Options.AllowFragmentation it comes from Options.IDs,
// counters per (source, destination, protocol) with random starts, shared by
// the senders of a stack (RFC 6864 section 4.3, RFC 7739).
//
// The next hop's MAC comes from the port's policyarp entry for the
// destination, read without a lock. When there is none usable (unknown
// MAC, aged, invalidated by a gratuitous ARP), the sender first asks the
// table to resolve the destination: when netstack knows the next hop
// already, the entry is usable at once and the datagram goes fast. Otherwise,
// and when the datagram is bigger than the link MTU, or the link's queue is
// full, the datagram goes through netstack's UDP endpoint bound on the same
// port (Fallback), which resolves the neighbour and fragments where needed
// (at the link MTU), and the next datagram goes fast once netstack's
// resolution completes. Every such datagram is counted by Reason; nothing is
// dropped silently: a datagram netstack also refuses is returned as an error.
//
// When a router lowered the destination's path MTU (an ICMP "fragmentation
// needed" or ICMPv6 "packet too big": policyarp.Entry.PathMTU), a larger
// datagram, up to the largest UDP datagram, leaves fast as IP fragments of at
// most that MTU, as Linux sends it with IP_PMTUDISC_WANT: built whole from
// the template (the UDP checksum covers all of it), its UDP header and data
// cut at multiples of 8 bytes, each piece behind a copy of the IP header
// with DF clear, MF but on the last, the offset, its length and checksum
// (IPv6: a Fragment header, RFC 8200 section 4.5), one identification per
// datagram from the (source, destination, UDP) counters of IDs (made on
// first need for a sender with DF), all in one link write, counted in
// Stats.Fragmented. netstack cannot do it: it fragments at the link MTU
// only, and the router would drop those pieces too.
//
// A frame from udpfast equals, field for field, the frame netstack sends for
// the same datagram with the default options (TTL/hop limit 64, TOS 0, DF
// with ID 0); TTL and TOS can be set to match a differently configured
// endpoint.
//
// # Plugging it in
//
//	table, _ := policyarp.New(policyarp.Options{Stack: st.Netstack(), NIC: st.NICID(0), BasePort: 20000, Ports: 1000})
//	reg := filter.Register(...)                            // fastfilter: binds netstack's UDP endpoints
//	snd, err := udpfast.New(udpfast.Options{
//		Table:    table,
//		Link:     tapEndpoint,                             // the table NIC's link (ethlink-based)
//		Fallback: udpfast.EndpointFallback{Endpoint: reg.NetstackEndpoint(20000)},
//		Local:    netip.MustParseAddrPort("198.51.100.2:20000"),
//	})
//	err = snd.Send(rtpPacket, peer)                        // 0 allocations on the fast path
//	n, err := snd.SendBatch(packets, []netip.AddrPort{peer}) // one link write per batch
//
// # UDP trains
//
// On a link that segments UDP (link.UDPSegmenter: a TAP or AF_PACKET link
// with Options.UDPSegmentation), SendBatch writes each run of datagrams to
// one destination, all of one size but a shorter last, as one train: the
// header of the whole run (lengths for all of it, the UDP checksum left
// partial from the pseudo-header) followed by the payloads, straight from
// the caller's slices, which the kernel cuts into the datagrams, each with
// its own lengths, IPv4 ID and checksum, as for a socket with UDP_SEGMENT.
// One system call then carries up to 64 datagrams (64 KB): over a TAP, where
// each write(2) runs the kernel's receive path, that is most of the cost of a
// reflector under load (mediastack bench). A lone datagram still goes in
// the batch's one WriteFrames. What the kernel sends equals what SendBatch
// sends without trains (linktest.CutUDPTrain emulates the kernel in the
// tests), except that with DF the IPv4 IDs of a train count up from 0.
//
// A Sender is used by one goroutine; senders on the same goroutine may share
// a Scratch. Stats may be read concurrently.
package udpfast
