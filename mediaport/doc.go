// Package mediaport gives Go media applications UDP ports that use
// mediastack's fast paths: a Port is a net.PacketConn whose reads come from
// the fast receive path (fastfilter) and whose writes go through the fast
// send path (udpfast with its policy ARP table), falling back to netstack
// whenever the fast path cannot take a datagram, with nothing lost either
// way. docs/design.md shows the data path under a port.
//
// A Manager owns the fast paths of one NIC of a stack: it builds the
// fastfilter.Filter, installs its hook on the NIC's link, builds the
// policyarp.Table for the media port range and subscribes it to the
// filter's neighbour announcements, then opens ports from the range one at a
// time or as RTP/RTCP pairs, the way a media gateway allocates ports per
// call:
//
//	m, err := mediaport.NewManager(st, mediaport.Options{PortMin: 20000, PortMax: 20999})
//	defer m.Close()
//	pair, err := m.OpenPair(0)            // the next free even port and the odd one after it
//	n, from, err := pair.RTP.ReadFrom(buf) // straight from the link's receive hook
//	_, err = pair.RTP.WriteTo(pkt, from)   // a raw frame when the peer's MAC is known
//
// mediahost builds a stack on a TAP or raw link with its Manager in one
// call, the common case.
//
// The NIC's link must be a mediastack link (link/tap, link/raw, link/sim or
// anything built on link/ethlink): one that runs a link.FrameHook on the raw
// bytes it receives and writes raw frames (udpfast.Link).
//
// # Ports
//
// Each Port is one registered UDP port, dual-stack, on every address of
// the NIC; its receive buffer is a fastfilter.Ring, fed by both of the
// port's lanes (straight from the link, and netstack's UDP endpoint bound on
// the port for fragments and datagrams with IP options). The ring is
// registered as the port's receiver (Filter.RegisterRing: the filter copies
// into it directly and counts each datagram without a locked instruction),
// and a blocked reader waits in the ring (Ring.Wait) on a channel its read
// deadline closes, so a new deadline reaches a read that is blocked
// already. Writes pick the
// source address netstack's route picks for the destination and send
// through a udpfast.Sender for that address, made on first use; the
// datagrams the fast path cannot take go through the port's netstack
// endpoint, counted by reason (Port.Stats). Reads and writes honour
// deadlines, SetReadDeadline included on a read that is already blocked;
// Close unregisters the port, wakes blocked readers and makes the port
// number available again.
//
// Beside net.PacketConn, a Port has the allocation-free forms of
// net.UDPConn (ReadFromUDPAddrPort, WriteToUDPAddrPort), batch I/O
// (ReadBatch, WriteBatch: [][]byte plus sizes and addresses, many datagrams
// per call) and ReadPacket, which also tells when and by which lane a
// datagram arrived. A port opened with OpenFunc has no buffer: every
// datagram is handed to a ReceiveFunc on the link's receive goroutine,
// which is how relays and reflectors forward without a goroutine hop.
//
// # Marking, broadcast and memory
//
// Ports mark what they send with a DSCP, EF by default (Options.DSCP,
// Port.SetDSCP), on both lanes. They receive unicast only, unless
// Options.AcceptBroadcast or Port.SetAcceptBroadcast asks for datagrams
// to broadcast and multicast addresses. An idle port is cheap (660 bytes
// with a receive function, 1.7 KB with a buffer; a full range of 64512
// ports idles under 100 MB): a port's buffer memory is allocated for its
// first datagram, its send scratch for its first send and its netstack
// endpoint for its first datagram sent through netstack. Those first
// datagrams allocate; the ones after them do not.
//
// # Go media libraries
//
// A Port plugs into code written for a net.UDPConn or a net.PacketConn.
// Pion's packages marshal and unmarshal into caller buffers (rtp.Packet,
// rtcp.Packet) that go straight to WriteTo and come from ReadFrom, and a
// Pion WebRTC peer connection takes a port as its one UDP socket through
// an ICE UDP mux: ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: port}) in
// a webrtc.SettingEngine (SetICEUDPMux), with mDNS candidates off so that
// the port's address is the host candidate (Example_webrtc). STUN, DTLS,
// SCTP and SRTP then all travel on the fast paths.
//
// # Concurrency
//
// A Port may be used from several goroutines: reads of buffered datagrams
// take no lock (a reader that has to wait takes one briefly); writes are
// serialised by a per-port mutex, because a udpfast.Sender has one writer
// at a time. The Manager's methods are safe for concurrent use.
package mediaport
