package bench

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/discard"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
)

// Addresses of the in-process workloads and of the real link: the stack
// under test and its peer (the load generator) are internal/frames' Stack
// and Peer.
var (
	stackMAC, peerMAC = frames.StackMAC, frames.PeerMAC
	stackV4, stackV6  = frames.Prefix(frames.StackV4), frames.Prefix(frames.StackV6)
	peerV4, peerV6    = frames.Prefix(frames.PeerV4), frames.Prefix(frames.PeerV6)
)

// basePort is the stack's first media port; peerPort the peer's.
const (
	basePort = 20000
	peerPort = 40000
)

// family is an IP version the workloads run over.
type family struct {
	name        string
	local, peer netip.Addr
}

var (
	familyV4 = family{"v4", stackV4.Addr(), peerV4.Addr()}
	familyV6 = family{"v6", stackV6.Addr(), peerV6.Addr()}
	families = []family{familyV4, familyV6}
)

// host is a stack on an in-memory link whose writes land in a
// discard.Device (a copy into a flat buffer, as a write to a descriptor
// would), with the fast paths' filter and policy ARP table. Frames come in
// with link.DeliverFrame, on the caller's goroutine: no syscall, no
// scheduling, only the paths' own work.
type host struct {
	st     *stack.Stack
	link   *ethlink.Endpoint
	sink   *discard.Device
	filter *fastfilter.Filter // nil unless hostOptions.fast
	table  *policyarp.Table
}

type hostOptions struct {
	// ports is how many media ports (from basePort) the filter and the
	// policy ARP table cover.
	ports int
	// peers get static neighbour entries with peerMAC, so that neither
	// path resolves anything while measured.
	peers []netip.Addr
	// fast installs the fast filter's hook on the link.
	fast bool
}

func newHost(o hostOptions) (h *host, err error) {
	if o.ports < 1 {
		o.ports = 1
	}
	h = &host{sink: discard.New(2048)}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	if h.link, err = ethlink.New(ethlink.Options{Device: h.sink, MAC: stackMAC, MTU: 1500}); err != nil {
		return nil, err
	}
	h.st, err = stack.New(stack.Options{
		NICs: []stack.NICOptions{{Name: "bench0", Link: h.link, Addrs: []string{stackV4.String(), stackV6.String()}}},
		Seed: 1,
	})
	if err != nil {
		return nil, err
	}
	ns, nic := h.st.Netstack(), h.st.NICID(0)
	h.table, err = policyarp.New(policyarp.Options{Stack: ns, NIC: nic, BasePort: basePort, Ports: o.ports})
	if err != nil {
		return nil, err
	}
	for _, p := range o.peers {
		if err := h.table.SetStatic(stack.AddrFrom(p), peerMAC); err != nil {
			return nil, err
		}
	}
	if o.fast {
		h.filter, err = fastfilter.New(fastfilter.Options{Stack: ns, NIC: nic, PortMin: basePort, PortMax: uint16(basePort + o.ports - 1)})
		if err != nil {
			return nil, err
		}
		h.filter.SubscribeNeighborUpdates(h.table.HandleNeighborUpdate)
		h.link.SetFrameHook(h.filter.Hook)
	}
	return h, nil
}

// written returns how many frames the link has sent.
// portSender is the fast sender of reg's port as an application sets it up:
// the port's netstack endpoint is the fallback lane.
func (h *host) portSender(reg *fastfilter.Registration, local netip.AddrPort) (*udpfast.Sender, error) {
	return udpfast.New(udpfast.Options{
		Table:    h.table,
		Link:     h.link,
		Fallback: udpfast.EndpointFallback{Endpoint: reg.NetstackEndpoint(local.Port())},
		Local:    local,
	})
}

func (h *host) written() uint64 {
	n, _ := h.sink.Written()
	return n
}

// expectWritten checks that want frames were sent since before.
func (h *host) expectWritten(before uint64, want int) error {
	if got := h.written() - before; got != uint64(want) {
		return fmt.Errorf("%d frames sent for %d packets", got, want)
	}
	return nil
}

func (h *host) close() error {
	if h.filter != nil {
		h.link.SetFrameHook(nil)
		h.filter.Close()
	}
	if h.table != nil {
		h.table.Close()
	}
	if h.st != nil {
		h.st.Close()
	}
	return nil
}

// errNotDelivered reports a packet that did not come out of the path.
var errNotDelivered = errors.New("packet not delivered")
