package ethlink

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
)

// UDP segmentation offload (Options.UDPSegmentation).
//
// A media sender under load writes bursts of datagrams of one size to one
// peer (a video frame cut into RTP packets, a reflector answering what
// queued up). Over a TAP each frame costs a write(2) that runs the kernel's
// whole receive path for it. With UDP segmentation the endpoint writes such
// a train once, behind a virtio-net header of type GSO_UDP_L4, and the
// kernel cuts it into the datagrams, each with its own IP and UDP header and
// checksum (as for a socket with UDP_SEGMENT): one system call for the
// train.

// MaxUDPSegmentsPerWrite caps a train at Linux's UDP_MAX_SEGMENTS as it has
// been since UDP GSO came (64; later kernels allow more).
const MaxUDPSegmentsPerWrite = 64

// udpChecksumOffset is where the checksum sits in a UDP header.
const udpChecksumOffset = 6

var _ link.UDPSegmenter = (*Endpoint)(nil)

// udpGSOState is the scratch of WriteUDPSegments, under its own lock: the
// fast senders that use it do not take the endpoint's transmit lock.
type udpGSOState struct {
	mu   sync.Mutex
	dev  VnetDevice
	pkts [1]vnet.Packet
	// refused is set when the kernel refused a train as invalid: Linux
	// takes virtio-net's GSO_UDP_L4 from a TAP or a packet socket since
	// 6.2 only. Trains stay off from then on (MaxUDPSegments is 0), so
	// an older kernel costs one refused train, not every one.
	refused atomic.Bool
}

// errNoUDPSegmentation is returned by WriteUDPSegments on an endpoint that
// cannot segment (MaxUDPSegments is 0).
var errNoUDPSegmentation = errors.New("ethlink: UDP segmentation is off (Options.UDPSegmentation needs a VnetDevice)")

// checkUDPSegmentation validates Options.UDPSegmentation in New.
func checkUDPSegmentation(opts *Options) (VnetDevice, error) {
	if !opts.UDPSegmentation {
		return nil, nil
	}
	v, ok := opts.Device.(VnetDevice)
	if !ok {
		return nil, fmt.Errorf("ethlink: UDP segmentation needs a device that writes virtio-net headers (a TAP opened with IFF_VNET_HDR); %T is not one", opts.Device)
	}
	return v, nil
}

// MaxUDPSegments implements link.UDPSegmenter. With a capture it is 0: the
// capture records frames as they go on the wire, one per datagram.
func (e *Endpoint) MaxUDPSegments() int {
	if e.udpGSO.dev == nil || e.opts.Capture != nil || e.udpGSO.refused.Load() {
		return 0
	}
	return MaxUDPSegmentsPerWrite
}

// WriteUDPSegments implements link.UDPSegmenter.
func (e *Endpoint) WriteUDPSegments(hdr []byte, payloads [][]byte) error {
	if e.closed.Load() {
		return link.ErrClosed
	}
	if e.MaxUDPSegments() == 0 {
		return errNoUDPSegmentation
	}
	if len(payloads) < 2 || len(payloads) > MaxUDPSegmentsPerWrite {
		return fmt.Errorf("ethlink: a UDP train of %d datagrams (want 2 to %d)", len(payloads), MaxUDPSegmentsPerWrite)
	}
	if len(hdr) < header.EthernetMinimumSize+header.IPv4MinimumSize+header.UDPMinimumSize {
		return fmt.Errorf("ethlink: UDP train header of %d bytes", len(hdr))
	}
	segSize := len(payloads[0])
	if segSize == 0 || len(payloads[len(payloads)-1]) > segSize {
		return fmt.Errorf("ethlink: UDP train of payloads %d..%d bytes: the last must be no longer than the first, and none empty", segSize, len(payloads[len(payloads)-1]))
	}
	g := &e.udpGSO
	g.mu.Lock()
	defer g.mu.Unlock()
	p := &g.pkts[0]
	p.Hdr = vnet.Hdr{
		Flags:      vnet.FlagNeedsCsum,
		GSOType:    vnet.GSOUDPL4,
		HdrLen:     uint16(len(hdr)),
		GSOSize:    uint16(segSize),
		CsumStart:  uint16(len(hdr) - header.UDPMinimumSize),
		CsumOffset: udpChecksumOffset,
	}
	p.Parts = append(append(p.Parts[:0], hdr), payloads...)
	n, err := g.dev.WriteVnet(g.pkts[:])
	clear(p.Parts) // keep no references to the caller's buffers
	if n == 1 {
		e.Stats.TxFrames.Add(uint64(len(payloads)))
		e.Stats.TxUDPTrains.Add(1)
		return nil
	}
	e.Stats.TxErrors.Add(uint64(len(payloads)))
	if err == nil {
		err = link.ErrQueueFull
	}
	if errors.Is(err, syscall.EINVAL) {
		g.refused.Store(true)
		e.Stats.TxUDPTrainsRefused.Add(1)
	}
	return err
}
