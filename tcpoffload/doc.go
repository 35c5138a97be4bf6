// Package tcpoffload is mediastack's TCP transmit offload for media over
// TCP (progressive HTTP downloads, HLS/DASH segments, RTSP-interleaved
// streams): netstack hands the link one large TCP packet instead of one
// packet per MSS, and the link sends it in the cheapest form the medium
// takes, from a per-session header template. docs/design.md shows where it
// sits in the data path.
//
// netstack keeps all of TCP: sequence numbers, ACKs, windows, SACK,
// retransmission, congestion control. The offload only changes how a packet
// netstack decided to send leaves the link; a retransmission is just another
// packet through the same path. Without it netstack builds a whole TCP, IP
// and Ethernet header and walks IP, NIC, neighbour and link code for every
// MSS-sized segment.
//
// # Plugging it in
//
// The links take the Engine as their link.TCPOffload, the small interface
// the link layer defines for this (tap.Options.TCPOffload,
// raw.Options.TCPOffload, sim.EndpointOptions.TCPOffload,
// ethlink.Options.TCPOffload); make one per link with New. The link is then
// a host-GSO endpoint (netstack's stack.GSOEndpoint): netstack builds TCP
// packets of up to MaxLargePacket bytes with one IP and TCP header and the
// MSS, and leaves the TCP checksum of every packet of such a connection
// partial (the pseudo-header sum), pure ACKs included. The link hands each
// large packet to the engine (AppendFrames or AppendVnet) and writes what
// it gets back; the engine never touches the device. New returns a nil
// Engine for Off, which a link takes as no offload.
//
//	eng, err := tcpoffload.New(tcpoffload.Options{Mode: tcpoffload.Vnet})
//	...
//	ep, err := tap.New(tap.Options{Name: "ms0", TCPOffload: eng})
//	...
//	for _, s := range eng.Sessions() { ... } // metrics
//
// On link/sim, give the engine the network's clock
// (tcpoffload.Options{Mode: tcpoffload.Soft, Clock: network.Clock()}).
//
// # The two transmit forms
//
//   - Vnet: a TAP opened with IFF_VNET_HDR takes each large packet in one
//     write, after a virtio-net header marking it GSO (TCPv4 or TCPv6,
//     gso_size = the MSS) and NEEDS_CSUM (csum_start at the TCP header,
//     csum_offset 16). The kernel segments it only if it forwards it; a
//     local socket receives it whole, so the kernel's receive path runs once
//     per 64 KB, not once per MSS. Every packet netstack left partial goes
//     marked NEEDS_CSUM, so nothing is summed in user space.
//   - Soft: for links without offload (AF_PACKET, sim), the engine cuts the
//     large packet into MSS-sized frames (AppendFrames) and the link writes
//     them with its batch write (one sendmmsg per burst on AF_PACKET).
//     Every other packet netstack left partial the link completes
//     (vnet.CompletePartial) before it leaves.
//
// # Header templates
//
// A session's header template is the header of its current large packet, as
// netstack built it. Its static fields (MACs, addresses, ports, TOS, TTL or
// hop limit, flow label, DF, the options' layout) are the same in every
// frame; per frame only the variable ones change: IP total or payload
// length, the IPv4 ID where DF is clear, the IPv4 header checksum, the TCP
// sequence number, FIN and PSH on the last frame only, CWR on the first
// only, and the TCP checksum, computed from sums over the static fields kept
// per session, so the per-frame path no longer walks netstack's IP, NIC,
// neighbour and link code.
//
// # The session table and the ACK hook
//
// Sessions are keyed by the 4-tuple and counted per session (large packets,
// the frames they carry, payload bytes, cap splits); Engine.Sessions and
// Engine.Stats take snapshots for metrics. The links call ObserveInbound for
// every inbound frame before the FrameHook (fastfilter) and netstack see it:
// an ACK of an offloaded session has its acknowledgement number, window and
// timestamp option recorded in the session entry, and goes on to netstack
// unchanged. Idle sessions, and closed ones after a
// short linger, are forgotten; their counts stay in the totals.
//
// # Media pacing: the cap on large packets
//
// A 64 KB large packet leaves as about 45 back-to-back segments: at line
// rate that is a burst a jitter-sensitive receiver (or a shallow switch
// queue shared with RTP) may not absorb, and a fast-path RTP frame written
// meanwhile waits behind it. Options.MaxLargePacket caps every session (it
// is the GSO maximum netstack is told, so netstack itself builds smaller
// packets); Engine.SetSessionCap lowers it for one session (the engine then
// splits the packet: smaller vnet packets, or soft bursts the link writes
// separately, so other frames can interleave between them). The trade-off:
// a smaller cap means more writes and more per-packet work per MB (at 8 KB,
// about 8 times the writes of 64 KB), so less of the offload's saving; it
// does not add delay, and TCP's own pacing is unchanged.
package tcpoffload
