package mediahost

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

// Options configure a Host.
type Options struct {
	// Link is the link to run on: a TAP device or a raw AF_PACKET socket
	// on an existing interface. Required.
	Link Link
	// Addrs are the stack's addresses, IPv4 or IPv6, with their prefixes
	// (each adds an on-link route). At least one.
	Addrs []netip.Prefix
	// Gateways are default gateways, at most one IPv4 and one IPv6, each
	// inside one of Addrs' prefixes.
	Gateways []netip.Addr
	// MAC is the stack's Ethernet address. Default: a random locally
	// administered one on a TAP, the interface's own on a raw link.
	MAC net.HardwareAddr
	// MTU is the link MTU. Default: 1500 on a TAP, the interface's on a raw
	// link.
	MTU uint32
	// TCPOffload is how the link sends netstack's large TCP packets; nil
	// picks what the link's kind runs best (LinkKind.TCPOffload).
	TCPOffload *tcpoffload.Mode
	// UDPSegmentation lets the media ports' fast senders write a train of
	// datagrams to one peer in one system call, for the kernel to cut (see
	// link/tap and link/raw).
	UDPSegmentation bool
	// VLAN puts the host on this 802.1Q VLAN ID (1-4094) of the link, as a
	// Linux VLAN sub-interface would: frames go out tagged and only the
	// VLAN's come in (ethlink Options.VLAN). 0: untagged. With a VLAN a
	// TAP's default TCP offload is soft (vnet segmentation expects
	// untagged headers), and UDPSegmentation is refused.
	VLAN uint16
	// Ports configures the media ports (mediaport.Manager) on the UDP port
	// range Ports.PortMin to Ports.PortMax; a zero range opens none and
	// Host.Ports returns nil. NIC is the host's one NIC, 0.
	Ports mediaport.Options
	// Capture, when set, records every frame the link sends or receives.
	Capture *pcap.Writer
	// OnLinkError is called once, from the link's reader, when the link
	// fails (the TAP or the interface was deleted); the host is then of no
	// more use and should be closed.
	OnLinkError func(error)
}

// validate checks what no package New calls checks on its own.
func (o *Options) validate() error {
	switch {
	case o.Link.Kind != TAP && o.Link.Kind != Raw:
		return fmt.Errorf("mediahost: Options.Link %v: want a TAP or Raw link", o.Link)
	case len(o.Addrs) == 0:
		return errors.New("mediahost: Options.Addrs is empty: the stack needs at least one address")
	}
	for _, p := range o.Addrs {
		if !p.IsValid() {
			return fmt.Errorf("mediahost: Options.Addrs holds an invalid prefix %v", p)
		}
	}
	return nil
}

// Host is a user-space stack on a real link with media ports.
type Host struct {
	link  tcpipstack.LinkEndpoint
	stack *stack.Stack
	ports *mediaport.Manager

	closeOnce sync.Once
	closeErr  error
}

// New opens the link, builds the stack on it and, with a port range, the
// media ports. On error nothing is left open.
func New(opts Options) (*Host, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ep, err := newLink(&opts)
	if err != nil {
		return nil, err
	}
	nic := stack.NICOptions{Name: opts.Link.Name, Link: ep}
	for _, p := range opts.Addrs {
		nic.Addrs = append(nic.Addrs, p.String())
	}
	var gateways []string
	for _, g := range opts.Gateways {
		gateways = append(gateways, g.String())
	}
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{nic}, Gateways: gateways})
	if err != nil {
		ep.Close()
		return nil, err
	}
	h := &Host{link: ep, stack: st}
	if opts.Ports.PortMin != 0 || opts.Ports.PortMax != 0 {
		if h.ports, err = mediaport.NewManager(st, opts.Ports); err != nil {
			st.Close()
			return nil, err
		}
	}
	return h, nil
}

// Stack returns the host's stack: TCP and plain UDP through netstack.
func (h *Host) Stack() *stack.Stack { return h.stack }

// Ports returns the media ports, or nil when Options.Ports had no range.
func (h *Host) Ports() *mediaport.Manager { return h.ports }

// MAC returns the stack's Ethernet address on the link.
func (h *Host) MAC() net.HardwareAddr { return net.HardwareAddr(h.link.LinkAddress()) }

// MTU returns the link MTU.
func (h *Host) MTU() uint32 { return h.link.MTU() }

// Close closes the media ports (removing the link's receive hook), then
// the stack, which closes the link and waits for every goroutine of the
// stack and the link. It returns the media ports' error, if any; later
// calls return the same.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		if h.ports != nil {
			h.closeErr = h.ports.Close()
		}
		h.stack.Close()
	})
	return h.closeErr
}
