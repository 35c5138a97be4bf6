// Package fastfilter is mediastack's fast receive path: a hook in the link
// layer, ahead of netstack's network layer, that delivers UDP datagrams for
// registered ports (RTP/RTCP media) straight to the application, and passes
// everything else on to netstack untouched. docs/design.md shows the whole
// data path.
//
// netstack's own receive path costs about 2 µs and 7 to 11 allocations per
// datagram; the filter parses the raw frame in place, finds the port in an
// array indexed by port offset, checks the frame, and copies the payload into
// the application's Ring (RegisterRing), from which the application reads
// it, in about 60 ns for a 172-byte datagram and 80 ns for 1200 bytes,
// checksums included, with no allocation (BenchmarkReceive compares the two on the
// same frames). The UDP checksum over the payload is verified in the pass
// that copies it into the Ring, with AVX2 where the CPU has it
// (internal/csum). The receive time
// is read only when asked for (Datagram.ReceivedAt, RingOptions.Timestamps):
// a clock read costs about 20 ns here.
//
// # Plugging it in
//
//	f, err := fastfilter.New(fastfilter.Options{Stack: st.Netstack(), NIC: st.NICID(0)})
//	st.Link(0).(link.Hookable).SetFrameHook(f.Hook) // tap, raw, sim links
//	ring, _ := fastfilter.NewRing(fastfilter.RingOptions{})
//	reg, err := f.RegisterRing(20000, 20001, ring) // RTP and RTCP
//	n, from, err := ring.Read(buf, deadline)
//
// On netstack's own link endpoints (channel, fdbased), which build a
// PacketBuffer before anyone sees the frame, wrap the endpoint instead:
// Wrap(child, nil) when creating the NIC, then SetFilter(f).
//
// # What the hook checks, in order
//
//  1. Ethernet: the destination MAC is the NIC's, broadcast or multicast
//     (unicast to another MAC is dropped and counted as NotOurs, unless the
//     NIC is promiscuous); an 802.1Q tag is skipped when it is a priority tag
//     (VID 0); other tagged frames are passed on (a link with a VLAN,
//     ethlink Options.VLAN, takes its own VLAN's tag off before the hook). ARP and IPv6 Neighbor Advertisements are
//     looked at for neighbour announcements (SubscribeNeighborUpdates) and
//     passed on.
//  2. IPv4 or IPv6, protocol UDP, no IPv6 extension header.
//  3. The destination address is one of the NIC's unicast addresses (read
//     from netstack into a snapshot, refreshed periodically and at Register).
//  4. Not a fragment, then the destination port is registered.
//  5. No IPv4 options.
//  6. Soundness: IPv4 total length and IHL, IPv4 header checksum, a source
//     a datagram may come from (not 0/8, loopback, multicast, broadcast,
//     IPv4-mapped or the stack's own: martians, dropped as Linux drops
//     them; class E goes to netstack as unusual), UDP length
//     against the IP payload, UDP checksum (IPv4 when non-zero, IPv6
//     always), checksums skipped when the link reports
//     CapabilityRXChecksumOffload. A frame for a registered port that fails
//     is dropped and counted by reason; it never reaches the application.
//     (A Ring checks the UDP checksum while it copies the payload in; a
//     ReceiveFunc of the application's own is called only once it passed.)
//
// Whatever fails steps 1 to 5 goes on to netstack unchanged (an IPv4 header
// whose IHL exceeds its total length as malformed). Every registered
// port also has a netstack UDP endpoint bound on it, which reserves the port
// in netstack and feeds what netstack receives for it (reassembled
// fragments, datagrams with IP options) to the same ReceiveFunc, so the
// application sees every valid datagram whichever lane it took
// (Datagram.ViaNetstack tells which). That lane drops martians too, and
// datagrams to a broadcast or multicast address unless the registration
// asked for them (Registration.SetAcceptBroadcast): the endpoint is bound
// to the unspecified address, and would see them where a socket bound to a
// unicast address does not. That endpoint is also the fallback sender of
// the fast send path (Registration.NetstackEndpoint). With
// Options.UnboundUDP the endpoint is opened only when first asked for,
// and netstack's default UDP handler serves the port's netstack lane
// until then: an idle port then costs the filter a few hundred bytes
// instead of netstack's 5 KB.
//
// VLANs are the link's business, as on Linux: a link with Options.VLAN
// (link/ethlink) strips its VLAN's tag before the hook and tags what is
// sent, so the hook and netstack see plain Ethernet frames.
//
// # Concurrency
//
// The hook takes no lock: the registry is an array of atomic pointers and the
// NIC's addresses an atomically swapped snapshot, so Register and
// Registration.Close run while traffic flows and a frame sees the port
// registered or not, never half. ReceiveFuncs run on the link's receive
// goroutine and must not block; Ring is the standard one: a bounded,
// lock-free, packet-preserving buffer that drops (and counts) when full and
// that the application reads with a deadline, one datagram or a batch at a
// time. Registration.Close stops the netstack lane at once; a frame the fast
// lane is classifying at that moment may still be delivered, so a
// ReceiveFunc must stay callable after Close (Ring.Receive is).
//
// Counters (Filter.Counters, Filter.PortCounters, Registration.Counters)
// count what was delivered by each lane, what was passed on and why, and
// what was dropped and why. Each event costs one atomic add, in its port's
// counters when the port is known; the filter's totals are summed when
// asked, and keep the counts of ports since unregistered.
package fastfilter
