package udpfast

import (
	"bytes"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/tcpipaddr"
)

// Fallback sends a datagram through netstack's ordinary UDP path, from the
// sender's local port. It is the slow lane of the port (docs/design.md,
// decision 3): netstack routes, resolves the neighbour (queueing the
// datagram meanwhile) and fragments what is too big. It must not retain
// payload.
type Fallback interface {
	SendViaNetstack(payload []byte, dst netip.AddrPort) error
}

// EndpointFallback is a Fallback over a netstack UDP endpoint bound on the
// sender's local address and port, such as fastfilter's
// Registration.NetstackEndpoint(port). Writes do not block: a full send
// buffer is reported as a *NetstackError wrapping tcpip.ErrWouldBlock.
//
// netstack picks the source address of an endpoint bound to the unspecified
// address (fastfilter's are) from the route: the NIC's primary address of
// the destination's family. Give the Sender that address as Local, or bind
// the endpoint to it, so both lanes send from the same address.
type EndpointFallback struct {
	Endpoint tcpip.Endpoint
	// TTL, when non-zero, is sent as the TTL / hop-limit control message,
	// so that the fallback lane uses the Sender's Options.TTL. (The TOS
	// byte is an endpoint option: set tcpip.IPv4TOSOption and
	// tcpip.IPv6TrafficClassOption on the endpoint to match Options.TOS.)
	TTL uint8
}

var _ Fallback = EndpointFallback{}

// SendViaNetstack implements Fallback.
func (f EndpointFallback) SendViaNetstack(payload []byte, dst netip.AddrPort) error {
	to := tcpipaddr.FullAddress(dst)
	var r bytes.Reader
	r.Reset(payload)
	opts := tcpip.WriteOptions{To: &to}
	if f.TTL != 0 {
		if dst.Addr().Is4() || dst.Addr().Is4In6() {
			opts.ControlMessages.HasTTL, opts.ControlMessages.TTL = true, f.TTL
		} else {
			opts.ControlMessages.HasHopLimit, opts.ControlMessages.HopLimit = true, f.TTL
		}
	}
	if _, err := f.Endpoint.Write(&r, opts); err != nil {
		return &NetstackError{Err: err}
	}
	return nil
}

// NetstackError is a netstack send failure on the fallback lane.
type NetstackError struct {
	Err tcpip.Error
}

func (e *NetstackError) Error() string { return "udpfast: netstack send: " + e.Err.String() }

// WouldBlock reports whether netstack refused the datagram for lack of
// buffer space (try again later) rather than for good.
func (e *NetstackError) WouldBlock() bool {
	_, ok := e.Err.(*tcpip.ErrWouldBlock)
	return ok
}
