// Package link holds the small types every mediastack link shares: the
// verdict a receive hook returns, the hook itself, and the raw-frame write
// that the fast send path uses beside netstack's WritePackets.
//
// The links themselves live in sub-packages: link/tap (a Linux TAP device),
// link/raw (an AF_PACKET socket on an existing interface) and link/sim (an
// in-memory network for deterministic simulation). All three are built on
// link/ethlink, which turns a device that moves whole Ethernet frames into a
// netstack LinkEndpoint.
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
