// Package tap gives netstack an Ethernet link over a Linux TAP device.
//
// New creates the TAP device by name (or attaches to an existing one, e.g. a
// persistent TAP made with `ip tuntap add`), sets it up with the requested
// MTU and returns an Endpoint: a link/ethlink Endpoint whose device is the
// TAP file descriptor. Plug it into a stack as any other link:
//
//	ep, err := tap.New(tap.Options{Name: "ms0"})
//	...
//	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Name: "ms0", Link: ep, Addrs: ...}}})
//
// The kernel sees the other end of the TAP as an ordinary interface: address
// it, route through it, move it into a network namespace. The stack has a MAC
// of its own (Options.MAC), distinct from the kernel interface's MAC.
//
// The descriptor is non-blocking and kept out of the Go runtime's poller: the
// reader's thread parks in poll(2) on it (internal/pollread), so a frame
// arriving alone wakes that one thread and nothing else (docs/design.md,
// "Waking the reader"), and Close wakes it. Frames written while the reader
// dispatches a batch (a relay's replies, written from the hook) are copied
// and written with the reader's next wait for a frame, in one io_uring_enter
// that submits the writes and a poll and then sleeps, so the wake-up the
// writes cause does not preempt the reader on its way back from a write;
// without io_uring, or when the reader will not wait, they are written at
// once, in order. A failed deferred write is counted in
// DeviceStats.TxDeferredErrors (its writer was told it succeeded). On Linux
// 6.7 and later the endpoint's reader, locked to its thread, reads through
// the same ring as well (DeviceStats.RxRing): one multishot read takes the
// frames into the ring's buffers as they come, and one io_uring_enter per
// batch submits its replies, runs the reads pending and, with nothing read,
// sleeps: no read(2) per frame, and no write(2) per frame when frames
// queue up. Close cancels that read on the reader's thread before the
// descriptor closes, so the TAP still goes with Close. A TAP
// deleted while in use makes the reader stop and report the error to
// Options.OnReadError exactly once.
//
// With an Options.TCPOffload that sends large packets whole (a
// tcpoffload.Engine in mode Vnet) the TAP is opened with IFF_VNET_HDR (by
// this package; water cannot ask for it): netstack's large TCP packets are
// written once each with a virtio-net header (link/vnet) asking the kernel
// to segment them, so a local socket receives them whole, and the kernel
// may hand over frames with checksums left partial, which the reader
// completes before the hook or netstack sees them:
//
//	eng, err := tcpoffload.New(tcpoffload.Options{Mode: tcpoffload.Vnet})
//	...
//	ep, err := tap.New(tap.Options{Name: "ms0", TCPOffload: eng})
//
// The default opens the TAP with water, as before.
//
// TAP needs Linux; elsewhere New returns an error saying so.
package tap

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/linkstats"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/pcap"
)

// Options configure a TAP endpoint.
type Options struct {
	// Name is the TAP device's name (at most 15 bytes). An existing TAP of
	// that name is attached to; an empty name lets the kernel pick tapN.
	Name string
	// MAC is the stack's Ethernet address on the link. The default is a
	// random locally administered unicast address.
	MAC tcpip.LinkAddress
	// MTU is the link MTU (default 1500). New sets the device's MTU to it.
	MTU uint32
	// Capture, when set, records every frame sent or received.
	Capture *pcap.Writer
	// OnReadError is called once, from the reader goroutine, when reading
	// the TAP fails for a reason other than Close (the device was deleted).
	OnReadError func(error)
	// TCPOffload is how large TCP packets from netstack are sent (a
	// *tcpoffload.Engine, one per link; nil or mode Off: netstack cuts
	// every segment). One that sends them whole (mode Vnet) opens the TAP
	// with IFF_VNET_HDR and writes each large packet once with a
	// virtio-net header for the kernel to segment (a local socket receives
	// it whole); it also has the kernel hand over frames with checksums
	// left partial (TUNSETOFFLOAD TUN_F_CSUM), which the reader completes
	// before the hook or netstack sees them. Mode Soft cuts large packets
	// into frames here.
	TCPOffload link.TCPOffload
	// UDPSegmentation opens the TAP with IFF_VNET_HDR (as TCPOffload's
	// Vnet does) and lets fast senders (udpfast) write a train of datagrams
	// to one peer in one write(2), for the kernel to cut into the
	// datagrams (virtio-net GSO_UDP_L4, Linux's UDP GSO): the TAP's cost
	// per datagram sent in bursts drops to a fraction (mediastack bench's
	// real-link suite shows it).
	UDPSegmentation bool
	// VLAN makes the link that of this 802.1Q VLAN ID (1-4094), as a
	// Linux VLAN sub-interface is: tags off on receive, on at send, for
	// netstack's frames and the fast path's (ethlink Options.VLAN);
	// untagged frames and other VLANs' are dropped and counted. 0: none.
	VLAN uint16
}

// DefaultMTU is the MTU used when Options.MTU is zero.
const DefaultMTU = 1500

// maxNameLen is IFNAMSIZ minus the terminating NUL.
const maxNameLen = 15

// Endpoint is a netstack link endpoint over a TAP device. Everything but
// Name and DeviceStats comes from the embedded ethlink.Endpoint.
type Endpoint struct {
	*ethlink.Endpoint
	name  string
	dev   device
	stats *DeviceStats
}

var (
	_ tcpipstack.LinkEndpoint = (*Endpoint)(nil)
	_ link.DropReporter       = (*Endpoint)(nil)
)

// ErrDeviceGone is wrapped by the read and write errors of a TAP that was
// deleted while in use.
var ErrDeviceGone = errors.New("the device is gone (deleted while in use)")

// DeviceStats counts what the TAP device layer drops before the frame
// reaches ethlink. Fields are updated atomically.
type DeviceStats struct {
	// RxTooBig counts frames longer than the read buffer (the device's MTU
	// was raised behind our back); they are dropped, not truncated.
	RxTooBig atomic.Uint64
	// RxChecksumCompleted counts frames the kernel handed over marked
	// NEEDS_CSUM (vnet mode) whose checksum the reader completed.
	RxChecksumCompleted atomic.Uint64
	// RxBadVnetHdr counts frames dropped for a virtio-net header that does
	// not fit them (vnet mode).
	RxBadVnetHdr atomic.Uint64
	// TxDeferred counts frames written during the reader's dispatch and
	// submitted with its next wait for a frame, in one io_uring_enter
	// (internal/deferwrite); TxDeferredErrors those whose write failed (the writer
	// was told it succeeded).
	TxDeferred, TxDeferredErrors atomic.Uint64
	// RxRing counts frames read through the ring (the read loop's
	// multishot read, internal/deferwrite) rather than one read(2) each:
	// all of them on a kernel that can (Linux 6.7 and later).
	RxRing atomic.Uint64
}

// device is what the platform code returns: a frame device read in batches
// whose kernel interface counts what it drops.
type device interface {
	ethlink.Device
	ethlink.BatchReader
	// kernelStats reads the TAP interface's counters now.
	kernelStats() (linkstats.Counters, error)
}

// New creates or attaches the TAP device opts.Name, sets it up and returns an
// endpoint over it. Reading starts when netstack attaches the endpoint.
func New(opts Options) (*Endpoint, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	tcp := link.ActiveTCPOffload(opts.TCPOffload)
	stats := new(DeviceStats)
	dev, name, err := openDeviceMode(opts.Name, opts.MTU, stats, (tcp != nil && tcp.Vnet()) || opts.UDPSegmentation)
	if err != nil {
		return nil, err
	}
	ep, err := ethlink.New(ethlink.Options{
		Device:      dev,
		Reader:      dev,
		MAC:         opts.MAC,
		MTU:         opts.MTU,
		Capture:     opts.Capture,
		OnReadError: opts.OnReadError,
		TCPOffload:  tcp,

		UDPSegmentation: opts.UDPSegmentation,
		VLAN:            opts.VLAN,
	})
	if err != nil {
		_ = dev.Close()
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	return &Endpoint{Endpoint: ep, name: name, dev: dev, stats: stats}, nil
}

// Name returns the TAP device's name (the kernel's choice when Options.Name
// was empty).
func (e *Endpoint) Name() string { return e.name }

// DeviceStats returns the device-level drop counters.
func (e *Endpoint) DeviceStats() *DeviceStats { return e.stats }

// AppendDrops implements link.DropReporter: ethlink's drops, frames too big
// for the read buffer or with a bad virtio-net header, and from the
// kernel's counters of the TAP interface the frames it dropped toward the
// stack ("queue-full": its queue of 500 frames was full, the stack read too
// slowly; the interface's tx_dropped) and the frames the stack wrote that
// it dropped ("write-dropped": rx_dropped). The kernel's counters are
// left out when it cannot be asked (the TAP was moved to another network
// namespace after New).
func (e *Endpoint) AppendDrops(dst []link.Drop) []link.Drop {
	dst = e.Endpoint.AppendDrops(dst)
	dst = append(dst,
		link.Drop{Reason: "too-big", Packets: e.stats.RxTooBig.Load()},
		link.Drop{Reason: "bad-vnet-header", Packets: e.stats.RxBadVnetHdr.Load()},
	)
	if ks, err := e.dev.kernelStats(); err == nil {
		dst = append(dst,
			link.Drop{Reason: "queue-full", Packets: ks.TxDropped},
			link.Drop{Reason: "write-dropped", Packets: ks.RxDropped},
		)
	}
	return dst
}

func (o *Options) setDefaults() error {
	if len(o.Name) > maxNameLen {
		return fmt.Errorf("tap: name %q is longer than %d bytes", o.Name, maxNameLen)
	}
	if o.Name == "." || o.Name == ".." || strings.ContainsAny(o.Name, "/: \t\n") {
		return fmt.Errorf("tap: %q is not a valid interface name", o.Name)
	}
	if o.MTU == 0 {
		o.MTU = DefaultMTU
	}
	if o.MTU < header.IPv4MinimumProcessableDatagramSize || o.MTU > 65535 {
		return fmt.Errorf("tap: MTU %d out of range [%d, 65535]", o.MTU, header.IPv4MinimumProcessableDatagramSize)
	}
	if o.MAC == "" {
		mac, err := randomMAC()
		if err != nil {
			return err
		}
		o.MAC = mac
	}
	if len(o.MAC) != header.EthernetAddressSize || o.MAC[0]&1 != 0 {
		return fmt.Errorf("tap: MAC %q is not a unicast Ethernet address", o.MAC)
	}
	return nil
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() (tcpip.LinkAddress, error) {
	var b [header.EthernetAddressSize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tap: picking a random MAC: %w", err)
	}
	b[0] = b[0]&^0x01 | 0x02 // unicast, locally administered
	return tcpip.LinkAddress(b[:]), nil
}
