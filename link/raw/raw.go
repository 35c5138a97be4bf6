// Package raw gives netstack an Ethernet link over an AF_PACKET socket bound
// to an existing interface: one end of a veth pair, a bridge port, a NIC.
//
//	ep, err := raw.New(raw.Options{Interface: "veth0"})
//	...
//	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Name: "veth0", Link: ep, Addrs: ...}}})
//
// The stack uses the interface's own MAC unless Options.MAC says otherwise;
// with another MAC the socket puts the interface in promiscuous mode so
// frames for it arrive. Keep the kernel's own IP processing off the
// interface (no addresses on it, or IPv6 disabled and forwarding off), or
// the kernel and the stack will both answer.
//
// # Receive: recvmmsg, not PACKET_MMAP
//
// Frames are received in batches with recvmmsg(2) on a non-blocking socket,
// the reader's thread parked in poll(2) between batches, outside the Go
// runtime's poller (internal/pollread: a lone frame wakes one thread, not
// the netpoller's and a spinning one). netstack's fdbased link offers this and
// a PACKET_RX_RING (PACKET_MMAP) mode; recvmmsg is the one used here because:
//
//   - ethlink reads into caller-owned buffers and hands frames to hooks that
//     must not retain them, so a ring would still be copied out of slot by
//     slot: it saves the syscall per batch, not the copy.
//   - fdbased's ring is TPACKET_V1, one poll per frame when traffic is
//     sparse, which real-time media mostly is (50 packets/s per stream).
//     TPACKET_V3 batches by block, but hands a block over only when it is
//     full or its retire timer (milliseconds) fires: latency and jitter
//     that RTP cannot afford.
//   - recvmmsg returns, per frame, the sockaddr_ll (to drop our own frames
//     looped back as PACKET_OUTGOING on kernels without
//     PACKET_IGNORE_OUTGOING) and PACKET_AUXDATA (to complete checksums the
//     kernel left to offload), with no ring geometry to tune against the
//     MTU.
//
// A batch of up to 32 frames costs one syscall either way. On Linux 6.7
// and later the endpoint's reader, locked to its thread, receives through
// io_uring instead (internal/deferwrite; DeviceStats.RxRing): one multishot
// recvmsg takes each frame with its sockaddr_ll and PACKET_AUXDATA into a
// provided buffer as it comes, and one io_uring_enter per batch submits
// the batch's replies and waits for the next frames, where recvmmsg and
// the writes made two system calls per batch; the frames are copied out
// of the ring's buffers as they would be out of a PACKET_MMAP ring, but
// handed over as they come, not by block.
//
// # Offloads
//
// Frames that a local sender (a veth peer, a container) handed over with
// checksum offload arrive without their TCP or UDP checksum filled in; the
// socket asks for PACKET_AUXDATA and completes those checksums. Frames
// larger than the read buffer (a peer doing TCP segmentation offload, or an
// MTU larger than ours) are dropped and counted in DeviceStats.RxTruncated:
// turn TSO off on a veth peer (ethtool -K PEER tso off).
//
// With an Options.TCPOffload in mode Soft (a tcpoffload.Engine), netstack
// hands the link TCP packets of up to 64 KB, which the engine cuts into
// MSS-sized frames from a header template and the link sends with one
// sendmmsg per burst.
//
// Sends use sendmmsg(2). Frames written while the reader dispatches a
// batch (a relay's replies, written from the hook) are copied and written
// with the reader's next wait for a frame, in one io_uring_enter that
// submits the writes and a poll and then sleeps, so the wake-up the writes
// cause does not preempt the reader on its way back from a write
// (internal/deferwrite, as on a TAP); without io_uring, or when the reader
// will not wait, they are written at once, in order. A failed deferred
// write is counted in DeviceStats.TxDeferredErrors (its writer was told it
// succeeded). Close wakes a blocked reader, asleep in poll or in the ring.
//
// # Interface flaps
//
// An interface taken down and up again (ip link set X down; ... up, a
// cable pulled, a driver reset) does not end the link, as it does not end
// a TAP: the reader counts it (DeviceStats.InterfaceDown), waits for the
// interface to be up again, and reads on; writes meanwhile fail and are
// counted (ethlink Stats.TxErrors), and netstack and the fast senders
// carry on, so relays and connections outlive the flap. Only an
// interface deleted under the reader stops it and reports the error to
// Options.OnReadError once.
package raw

import (
	"fmt"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/linkstats"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/pcap"
)

// Options configure an AF_PACKET endpoint.
type Options struct {
	// Interface is the name of an existing interface to bind to. Required.
	Interface string
	// MAC is the stack's Ethernet address (default: the interface's own).
	MAC tcpip.LinkAddress
	// MTU is the link MTU (default: the interface's MTU).
	MTU uint32
	// Capture, when set, records every frame sent or received.
	Capture *pcap.Writer
	// OnReadError is called once, from the reader goroutine, when reading
	// fails for a reason other than Close (the interface was deleted; one
	// taken down is waited for).
	OnReadError func(error)
	// TCPOffload sends large TCP packets from netstack as frames cut from
	// a header template, written with one sendmmsg per burst (a
	// *tcpoffload.Engine in mode Soft, one per link; the default, nil, is
	// off; mode Vnet needs a TAP).
	TCPOffload link.TCPOffload
	// UDPSegmentation lets fast senders (udpfast) write a train of
	// datagrams to one peer in one system call, for the kernel to cut
	// into the datagrams (virtio-net UDP GSO through a second, send-only
	// socket with PACKET_VNET_HDR).
	UDPSegmentation bool
	// VLAN makes the link that of this 802.1Q VLAN ID (1-4094), as a
	// Linux VLAN sub-interface is: tags off on receive, on at send, for
	// netstack's frames and the fast path's (ethlink Options.VLAN);
	// untagged frames and other VLANs' are dropped and counted. 0: none.
	VLAN uint16
}

// batchSize is how many frames one recvmmsg may return.
const batchSize = 32

// maxNameLen is IFNAMSIZ minus the terminating NUL.
const maxNameLen = 15

// Endpoint is a netstack link endpoint over an AF_PACKET socket.
// Everything but Interface and DeviceStats comes from the embedded
// ethlink.Endpoint.
type Endpoint struct {
	*ethlink.Endpoint
	iface string
	dev   device
	stats *DeviceStats
}

var (
	_ tcpipstack.LinkEndpoint = (*Endpoint)(nil)
	_ link.DropReporter       = (*Endpoint)(nil)
)

// DeviceStats counts what the socket layer handles before ethlink sees a
// frame. Fields are updated atomically.
type DeviceStats struct {
	// RxTruncated counts frames larger than the read buffer, dropped.
	RxTruncated atomic.Uint64
	// RxOutgoing counts our own frames looped back to the socket, dropped.
	RxOutgoing atomic.Uint64
	// RxRing counts frames received through the ring (the read loop's
	// multishot recvmsg, internal/deferwrite) rather than by recvmmsg: all
	// of them on a kernel that can (Linux 6.7 and later).
	RxRing atomic.Uint64
	// RxChecksumCompleted counts frames whose TCP or UDP checksum the
	// kernel left to offload and the reader filled in.
	RxChecksumCompleted atomic.Uint64
	// InterfaceDown counts the times the reader found the interface down
	// (ENETDOWN) and waited for it to come back up. Frames written
	// meanwhile fail and count in ethlink's Stats.TxErrors.
	InterfaceDown atomic.Uint64
	// RxQueueFull counts the frames the kernel dropped because the
	// socket's receive buffer was full (the stack read too slowly), from
	// PACKET_STATISTICS, which resets when read: AppendDrops reads it
	// and adds it here.
	RxQueueFull atomic.Uint64
	// TxDeferred counts frames written during the reader's dispatch and
	// submitted with its next wait for a frame, in one io_uring_enter
	// (internal/deferwrite); TxDeferredErrors those whose write failed (the
	// writer was told it succeeded).
	TxDeferred, TxDeferredErrors atomic.Uint64
}

// device is what the platform code returns: a frame device read in batches.
type device interface {
	ethlink.Device
	ethlink.BatchReader
	// readQueueDrops adds the kernel's count of frames dropped for a full
	// receive buffer since the last call to DeviceStats.RxQueueFull.
	readQueueDrops() error
	// interfaceStats reads the interface's own counters now.
	interfaceStats() (linkstats.Counters, error)
}

// New opens an AF_PACKET socket on opts.Interface and returns an endpoint
// over it. Reading starts when netstack attaches the endpoint.
func New(opts Options) (*Endpoint, error) {
	if opts.Interface == "" {
		return nil, fmt.Errorf("raw: Options.Interface is empty: name an existing interface (e.g. one end of a veth pair)")
	}
	if len(opts.Interface) > maxNameLen {
		return nil, fmt.Errorf("raw: interface name %q is longer than %d bytes", opts.Interface, maxNameLen)
	}
	if opts.MAC != "" && (len(opts.MAC) != header.EthernetAddressSize || opts.MAC[0]&1 != 0) {
		return nil, fmt.Errorf("raw: MAC %q is not a unicast Ethernet address", opts.MAC)
	}
	if opts.MTU != 0 && (opts.MTU < header.IPv4MinimumProcessableDatagramSize || opts.MTU > 65535) {
		return nil, fmt.Errorf("raw: MTU %d out of range [%d, 65535]", opts.MTU, header.IPv4MinimumProcessableDatagramSize)
	}
	tcp := link.ActiveTCPOffload(opts.TCPOffload)
	if tcp != nil && tcp.Vnet() {
		return nil, fmt.Errorf("raw: TCP offload mode vnet needs a TAP (virtio-net headers); use soft on %s", opts.Interface)
	}
	stats := new(DeviceStats)
	dev, mac, mtu, err := openSocket(opts.Interface, opts.MAC, stats, opts.UDPSegmentation)
	if err != nil {
		return nil, err
	}
	if opts.MTU != 0 {
		mtu = opts.MTU
	}
	ep, err := ethlink.New(ethlink.Options{
		Device:      dev,
		Reader:      dev,
		MAC:         mac,
		MTU:         mtu,
		BatchSize:   batchSize,
		Capture:     opts.Capture,
		OnReadError: opts.OnReadError,
		TCPOffload:  tcp,

		UDPSegmentation: opts.UDPSegmentation,
		VLAN:            opts.VLAN,
	})
	if err != nil {
		_ = dev.Close()
		return nil, fmt.Errorf("raw %s: %w", opts.Interface, err)
	}
	return &Endpoint{Endpoint: ep, iface: opts.Interface, dev: dev, stats: stats}, nil
}

// Interface returns the name of the interface the socket is bound to.
func (e *Endpoint) Interface() string { return e.iface }

// DeviceStats returns the socket-level counters.
func (e *Endpoint) DeviceStats() *DeviceStats { return e.stats }

// AppendDrops implements link.DropReporter: ethlink's drops, frames too big
// for the read buffer, the frames the kernel dropped because the socket's
// receive buffer was full ("queue-full", PACKET_STATISTICS' tp_drops,
// asked of the kernel now), and the interface's own rx_dropped
// ("interface-dropped": frames the kernel dropped as they arrived, before
// any socket saw them, e.g. a full backlog; on an interface the host uses
// too, its drops count there as well).
func (e *Endpoint) AppendDrops(dst []link.Drop) []link.Drop {
	_ = e.dev.readQueueDrops() // a closed socket keeps what it counted
	dst = e.Endpoint.AppendDrops(dst)
	dst = append(dst,
		link.Drop{Reason: "too-big", Packets: e.stats.RxTruncated.Load()},
		link.Drop{Reason: "queue-full", Packets: e.stats.RxQueueFull.Load()},
	)
	if c, err := e.dev.interfaceStats(); err == nil {
		dst = append(dst, link.Drop{Reason: "interface-dropped", Packets: c.RxDropped})
	}
	return dst
}
