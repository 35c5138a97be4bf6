package stack

import (
	"sync/atomic"

	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// UnboundUDPFunc is handed the UDP packets a NIC receives for which no
// netstack endpoint is bound: validated by netstack up to the network
// layer (reassembled, IP options processed), the UDP header parsed, not
// checked. It returns true when it took the packet (netstack then does
// nothing more with it), false to let netstack answer as usual (ICMP port
// unreachable). It must not retain pkt.
type UnboundUDPFunc func(id tcpipstack.TransportEndpointID, pkt *tcpipstack.PacketBuffer) bool

// SetUnboundUDP installs fn (nil removes it) as the handler of NIC i's
// UDP packets with no endpoint bound (position i of Options.NICs): the
// netstack lane of fastfilter's ports, which open their netstack endpoint
// only when they first need one (fastfilter.Options.UnboundUDP). netstack's
// own default handler is set once, at New, as netstack requires; this only
// swaps what it calls.
func (s *Stack) SetUnboundUDP(i int, fn UnboundUDPFunc) {
	if fn == nil {
		s.unbound[i].Store(nil)
		return
	}
	s.unbound[i].Store(&fn)
}

// handleUnboundUDP is netstack's default UDP handler: it calls the
// UnboundUDPFunc of the packet's NIC.
func (s *Stack) handleUnboundUDP(id tcpipstack.TransportEndpointID, pkt *tcpipstack.PacketBuffer) bool {
	i := int(pkt.NICID) - 1 // NIC i is NICID i+1 (addNICs)
	if i < 0 || i >= len(s.unbound) {
		return false
	}
	if fn := s.unbound[i].Load(); fn != nil {
		return (*fn)(id, pkt)
	}
	return false
}

// unboundHandlers holds one handler per NIC.
type unboundHandlers []atomic.Pointer[UnboundUDPFunc]
