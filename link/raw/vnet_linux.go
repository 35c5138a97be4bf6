//go:build linux

package raw

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/iovec"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
)

// segmentingSocket is a packetSocket with a second AF_PACKET socket on the
// interface for UDP trains (Options.UDPSegmentation): send-only (bound with
// protocol 0, so nothing is queued to it) and with PACKET_VNET_HDR, so
// every packet written goes behind a virtio-net header and a train
// (GSO_UDP_L4) reaches the kernel whole, to be cut into datagrams there
// (or by the receiving end of a veth). The reading socket stays as it is:
// PACKET_VNET_HDR would put a header before every frame read too.
type segmentingSocket struct {
	*packetSocket
	vmu  sync.Mutex
	vfd  int
	vhdr [vnet.HdrSize]byte
	viov []unix.Iovec
}

func openSegmentingSocket(s *packetSocket, ifindex int) (*segmentingSocket, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("a second AF_PACKET socket for UDP trains: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PACKET_VNET_HDR: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind the UDP train socket: %w", err)
	}
	return &segmentingSocket{packetSocket: s, vfd: fd}, nil
}

// WriteVnet implements ethlink.VnetDevice: each packet is one writev of its
// virtio-net header and pieces on the train socket. It never waits: a full
// socket buffer is link.ErrQueueFull.
func (s *segmentingSocket) WriteVnet(pkts []vnet.Packet) (int, error) {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if s.deferred != nil {
		// Frames deferred on the other socket go first, in order.
		s.wmu.Lock()
		s.deferred.Drain()
		s.wmu.Unlock()
	}
	for i := range pkts {
		if s.closed.Load() {
			return i, link.ErrClosed
		}
		p := &pkts[i]
		p.Hdr.MarshalTo(s.vhdr[:])
		s.viov = iovec.AppendPacket(s.viov[:0], s.vhdr[:], p.Parts)
		if err := iovec.WritePacket(s.vfd, s.viov); err != nil {
			return i, s.writeError(err, "writing a UDP train")
		}
	}
	return len(pkts), nil
}

// Close closes both sockets.
func (s *segmentingSocket) Close() error {
	s.vmu.Lock()
	err := s.packetSocket.Close()
	if s.vfd >= 0 {
		unix.Close(s.vfd)
		s.vfd = -1
	}
	s.vmu.Unlock()
	return err
}
