package mediahost

import (
	"fmt"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/link/tap"
	"github.com/mediastack/mediastack/tcpoffload"
)

// LinkKind is the kind of link a Host runs on.
type LinkKind uint8

const (
	// TAP is a TAP device, created or attached to by name (link/tap): the
	// kernel sees the other end as an interface of its own.
	TAP LinkKind = iota + 1
	// Raw is an AF_PACKET socket on an existing interface (link/raw): the
	// stack shares the wire with the kernel, with a MAC of its own or the
	// interface's.
	Raw
)

func (k LinkKind) String() string {
	switch k {
	case TAP:
		return "tap"
	case Raw:
		return "raw"
	default:
		return fmt.Sprintf("link-kind(%d)", uint8(k))
	}
}

// TCPOffload is the TCP offload links of this kind run with unless
// Options.TCPOffload says otherwise: Vnet on a TAP (the kernel segments
// large packets, or a local socket takes them whole), Soft on a raw link.
func (k LinkKind) TCPOffload() tcpoffload.Mode {
	if k == TAP {
		return tcpoffload.Vnet
	}
	return tcpoffload.Soft
}

// Link names the link a Host runs on.
type Link struct {
	Kind LinkKind
	// Name is the TAP device's name (at most 15 bytes; empty lets the
	// kernel pick tapN), or the interface a raw link binds to.
	Name string
}

// ParseLink parses a link spec as `mediastack serve --link` takes it:
// tap:NAME or raw:IFACE.
func ParseLink(spec string) (Link, error) {
	kind, name, ok := strings.Cut(spec, ":")
	switch {
	case !ok || name == "":
		return Link{}, fmt.Errorf("mediahost.ParseLink(%q): want tap:NAME or raw:IFACE", spec)
	case kind == "tap":
		return Link{TAP, name}, nil
	case kind == "raw":
		return Link{Raw, name}, nil
	}
	return Link{}, fmt.Errorf("mediahost.ParseLink(%q): unknown link kind %q (want tap:NAME or raw:IFACE)", spec, kind)
}

// String returns the link's spec, as ParseLink takes it.
func (l Link) String() string { return l.Kind.String() + ":" + l.Name }

// newLink opens the link opts describe, with the TCP offload its kind
// runs unless opts say otherwise. It is the one place that maps Options to
// the links' own options.
func newLink(opts *Options) (tcpipstack.LinkEndpoint, error) {
	mode := opts.Link.Kind.TCPOffload()
	if opts.VLAN != 0 && mode == tcpoffload.Vnet {
		mode = tcpoffload.Soft // vnet segmentation expects untagged headers
	}
	if opts.TCPOffload != nil {
		mode = *opts.TCPOffload
	}
	offload, err := tcpoffload.New(tcpoffload.Options{Mode: mode}) // nil for Off
	if err != nil {
		return nil, fmt.Errorf("mediahost: %w", err)
	}
	mac := tcpip.LinkAddress(opts.MAC)
	switch opts.Link.Kind {
	case TAP:
		ep, err := tap.New(tap.Options{Name: opts.Link.Name, MAC: mac, MTU: opts.MTU, Capture: opts.Capture,
			OnReadError: opts.OnLinkError, TCPOffload: offload, UDPSegmentation: opts.UDPSegmentation, VLAN: opts.VLAN})
		if err != nil {
			return nil, tapAdvice(err)
		}
		return ep, nil
	case Raw:
		ep, err := raw.New(raw.Options{Interface: opts.Link.Name, MAC: mac, MTU: opts.MTU, Capture: opts.Capture,
			OnReadError: opts.OnLinkError, TCPOffload: offload, UDPSegmentation: opts.UDPSegmentation, VLAN: opts.VLAN})
		if err != nil {
			return nil, err
		}
		return ep, nil
	}
	return nil, fmt.Errorf("mediahost: Options.Link: unknown kind %v (want TAP or Raw)", opts.Link.Kind)
}
