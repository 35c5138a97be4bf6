package link

import "github.com/mediastack/mediastack/link/vnet"

// TCPOffload is a TCP segmentation offload that sends the large packets of a
// host-GSO link. With one, the link tells netstack it is a GSO endpoint
// (stack.GSOEndpoint): netstack hands it TCP packets of up to
// MaxLargePacket bytes with a single IP and TCP header and the MSS, and the
// offload turns each into what the device takes. The link keeps the
// device-level work: the writes, the capture, its counters, completing the
// checksum of packets that are not large. tcpoffload.Engine implements it.
//
// One value serves one link (Attach). The link calls the Append methods from
// its transmit path, one packet at a time, and ObserveInbound from its
// receive path.
type TCPOffload interface {
	// MaxLargePacket returns the largest packet, in bytes from the IP
	// header on, netstack is to build (the link's GSO maximum). 0 means
	// off: a nil pointer implementing TCPOffload (tcpoffload.New gives one
	// for mode Off) returns 0, and the link is then no GSO endpoint.
	MaxLargePacket() int
	// Vnet reports whether large packets go to the device whole, behind a
	// virtio-net header asking it to segment them (AppendVnet; the device
	// must take virtio-net headers, as a TAP opened with IFF_VNET_HDR
	// does), rather than cut into frames (AppendFrames).
	Vnet() bool
	// Attach claims the offload for one link; a second claim fails.
	Attach() error
	// ObserveInbound sees every inbound frame before the FrameHook and
	// netstack do. It must not change or retain the frame.
	ObserveInbound(frame []byte)
	// AppendFrames cuts p into frames of at most p.MSS payload bytes with
	// complete checksums and appends them to frames, building each in the
	// buffer already in frames' spare capacity at its index when that is
	// big enough. perBurst is how many of the appended frames one write
	// may carry (a pacing cap). An error means p cannot be cut; the link
	// drops it.
	AppendFrames(frames [][]byte, p *LargePacket) (out [][]byte, perBurst int, err error)
	// AppendVnet appends to pkts the virtio-net packets that carry p: one
	// marked GSO, or several smaller ones when a pacing cap splits it. Their
	// first part is headers built in the buffers in hdrs' spare capacity
	// (grown as needed, returned); the rest are slices of p.Payload. The
	// slots of pkts' spare capacity are reused, Parts included. An error
	// means p cannot be sent; the link drops it.
	AppendVnet(pkts []vnet.Packet, hdrs [][]byte, p *LargePacket) ([]vnet.Packet, [][]byte, error)
	// CountPartialCompleted records that the link completed a checksum
	// netstack left partial, on a packet it did not send as NEEDS_CSUM.
	CountPartialCompleted()
}

// LargePacket is a TCP packet longer than its MSS that netstack handed a
// link with TCP offload. The offload must not retain its slices.
type LargePacket struct {
	// Header holds the Ethernet, IP and TCP headers, contiguous, the TCP
	// checksum field holding the pseudo-header sum (partial).
	Header []byte
	// Payload is the TCP payload in pieces (the packet's views), PayloadLen
	// bytes in all.
	Payload    [][]byte
	PayloadLen int
	// MSS is the segment size netstack asked for.
	MSS int
}

// ActiveTCPOffload returns o, or nil when o is nil or off (MaxLargePacket
// 0), so that links can test for offload with o != nil.
func ActiveTCPOffload(o TCPOffload) TCPOffload {
	if o == nil || o.MaxLargePacket() == 0 {
		return nil
	}
	return o
}
