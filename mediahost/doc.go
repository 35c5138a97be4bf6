// Package mediahost runs mediastack on a real link in one call: a TAP device
// or an AF_PACKET socket on an existing interface, a user-space stack with
// its addresses and gateways, and media ports (mediaport) on a UDP port
// range, as tsnet does for Tailscale. It is the common case, the one
// `mediastack serve` runs; the packages it assembles (link/tap, link/raw,
// stack, mediaport) remain there for anything else.
//
//	h, err := mediahost.New(mediahost.Options{
//		Link:  mediahost.Link{Kind: mediahost.TAP, Name: "media0"},
//		Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")},
//		Ports: mediaport.Options{PortMin: 20000, PortMax: 20999},
//	})
//	defer h.Close()
//	pair, err := h.Ports().OpenPair(0)     // RTP and RTCP, on the fast paths
//	n, from, err := pair.RTP.ReadFrom(buf) // straight from the TAP's reader
//
// Host.Stack is the stack for TCP and plain UDP through netstack
// (stack.Listen for an HTTP server, DialTCP, ListenUDP). Close tears the
// host down in order: the media ports and their hook, then the stack,
// which closes the link and waits for its goroutines.
//
// docs/design.md shows the data path under the media ports and where this
// package sits among the others.
//
// An address the host's kernel holds too on the link's interface makes
// both answer on a raw link, and hides the stack on a TAP: KernelAddrs
// finds such addresses before New, and KernelFilter is the nftables table
// that keeps the kernel off the stack's ports and pings where a raw link
// must share the host's address (`serve --share-host-address`).
//
// A TAP or AF_PACKET link needs Linux and CAP_NET_ADMIN (CAP_NET_RAW for
// raw); elsewhere New returns the link's error.
package mediahost
