// Package link holds the small types every mediastack link shares: the
// verdict a receive hook returns, the hook itself, the raw-frame write
// that the fast send path uses beside netstack's WritePackets, the UDP
// train write (UDPSegmenter), the drops a link counts (DropReporter), and
// TCPOffload, the interface through which a
// TCP segmentation offload (tcpoffload.Engine) plugs into a link. The
// capability packages depend on the link layer, never the reverse.
// docs/design.md shows the data path through them.
//
// The links themselves live in sub-packages: link/tap (a Linux TAP device),
// link/raw (an AF_PACKET socket on an existing interface) and link/sim (an
// in-memory network for deterministic simulation). All three are built on
// link/ethlink, which turns a device that moves whole Ethernet frames into a
// netstack LinkEndpoint. link/vnet is the virtio-net header and checksum
// completion the links and offloads share; link/pcap captures frames;
// link/linktest holds test doubles of devices.
package link

// Verdict is what a FrameHook decides about an inbound frame.
type Verdict uint8

const (
	// Pass hands the frame on to netstack unchanged.
	Pass Verdict = iota
	// Handled means the hook consumed the frame; netstack never sees it.
	Handled
)

func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Handled:
		return "handled"
	default:
		return "verdict(?)"
	}
}

// FrameHook inspects a raw inbound Ethernet frame (destination MAC first, no
// FCS) before netstack sees it, on the link's receive goroutine.
//
// It must not retain frame after it returns, and must not block: the link
// delivers nothing else while it runs.
type FrameHook func(frame []byte) Verdict

// Hookable is a link endpoint that runs a FrameHook on the raw bytes it
// receives, before it builds a netstack PacketBuffer.
type Hookable interface {
	// SetFrameHook installs h (nil removes it). Frames already being
	// delivered see the old hook or the new one, never a mix.
	SetFrameHook(h FrameHook)
}

// FrameWriter is a link endpoint that writes raw Ethernet frames straight to
// its medium, below netstack's network layer.
type FrameWriter interface {
	// WriteFrames writes complete Ethernet frames and returns how many were
	// written. It does not retain the frames. A link that cannot take more
	// right now returns ErrQueueFull with the count written so far.
	WriteFrames(frames [][]byte) (int, error)
}

// UDPSegmenter is a link that can write a train of UDP datagrams from one
// source to one destination as a single packet that the kernel cuts into
// the datagrams (UDP generic segmentation offload, as Linux's UDP_SEGMENT
// socket option does): one write for the train instead of one per datagram.
type UDPSegmenter interface {
	// MaxUDPSegments returns how many datagrams one WriteUDPSegments may
	// carry: 0 when the link cannot segment now.
	MaxUDPSegments() int
	// WriteUDPSegments writes hdr, the Ethernet, IP and UDP headers of
	// the whole train (IP and UDP lengths counting every payload, the
	// IPv4 header checksum complete, the UDP checksum field holding the
	// pseudo-header sum for the whole UDP length, not complemented, as
	// for a partial checksum), followed by the payloads: each becomes one
	// datagram. Every payload but the last has the length of the first,
	// and the last is no longer. It does not retain hdr or payloads; a
	// link that cannot take the train now returns ErrQueueFull.
	WriteUDPSegments(hdr []byte, payloads [][]byte) error
}

// Drop counts the frames a link lost for one reason.
type Drop struct {
	// Reason is a short lowercase label, words joined by hyphens
	// ("queue-full"), like the reasons of mediastack's other metrics.
	Reason  string
	Packets uint64
}

// DropReporter is a link that counts the frames lost at it or below it,
// where netstack and the fast paths never see them: the kernel's queue
// toward a TAP or an AF_PACKET socket, frames the link itself refused.
// metrics exports them as mediastack_link_dropped_packets_total.
type DropReporter interface {
	// AppendDrops appends the link's drop counts, one per reason, to dst
	// and returns it. The counts only grow. It may ask the kernel (a
	// system call): for metrics, not for the packet path.
	AppendDrops(dst []Drop) []Drop
}

// Error is a link error with a constant text.
type Error string

func (e Error) Error() string { return string(e) }

const (
	// ErrQueueFull reports that the link's transmit queue is full.
	ErrQueueFull = Error("link: transmit queue full")
	// ErrClosed reports a write to a closed link.
	ErrClosed = Error("link: closed")
	// ErrFrameTooBig reports a frame larger than the link's MTU plus header.
	ErrFrameTooBig = Error("link: frame larger than MTU")
)
