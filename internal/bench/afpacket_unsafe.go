//go:build linux

package bench

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// frameSender writes whole Ethernet frames to an interface through an
// AF_PACKET socket, a batch per sendmmsg(2), bypassing the qdisc: the load
// generator's send side costs no IP or UDP processing in its kernel.
// The socket's protocol is 0, so it receives nothing.
type frameSender struct {
	fd   int
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newFrameSender(iface string, batch int) (*frameSender, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding to %s: %w", iface, err)
	}
	// Straight to the driver: a full device queue drops (the path's
	// loss) instead of queueing in a qdisc.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
	return &frameSender{fd: fd, hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch)}, nil
}

// send writes frames with one sendmmsg and returns how many were sent.
func (s *frameSender) send(frames [][]byte) (int, error) {
	for i, f := range frames {
		s.iovs[i].Base = &f[0]
		s.iovs[i].SetLen(len(f))
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.Iovlen = 1
	}
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(len(frames)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (s *frameSender) close() error { return unix.Close(s.fd) }

// mmsgReceiver reads datagrams from a socket a batch per recvmmsg(2).
type mmsgReceiver struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
}

func newMmsgReceiver(batch, size int) *mmsgReceiver {
	r := &mmsgReceiver{hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch), bufs: make([][]byte, batch)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.Iovlen = 1
	}
	return r
}

// recv reads what fd has, without waiting, up to a batch; 0 when it has
// nothing (or failed).
func (r *mmsgReceiver) recv(fd int) int {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// datagram is datagram i of the last recv.
func (r *mmsgReceiver) datagram(i int) []byte { return r.bufs[i][:r.hdrs[i].Len] }
