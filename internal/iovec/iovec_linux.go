package iovec

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrWouldBlock is WritePacket's error for a descriptor that cannot take
// the packet now (EAGAIN, ENOBUFS); the links report it as
// link.ErrQueueFull.
var ErrWouldBlock = errors.New("iovec: the descriptor cannot take the packet now")

// Append appends an iovec for b to iov (nothing when b is empty).
func Append(iov []unix.Iovec, b []byte) []unix.Iovec {
	if len(b) == 0 {
		return iov
	}
	v := unix.Iovec{Base: unsafe.SliceData(b)}
	v.SetLen(len(b))
	return append(iov, v)
}

// Readv reads into hdr then buf with one readv(2), using iov (at least two
// elements) as scratch.
func Readv(fd int, iov []unix.Iovec, hdr, buf []byte) (int, error) {
	iov[0].Base, iov[1].Base = unsafe.SliceData(hdr), unsafe.SliceData(buf)
	iov[0].SetLen(len(hdr))
	iov[1].SetLen(len(buf))
	n, _, errno := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Writev writes the pieces iov points at with one writev(2): one packet on a
// TAP or a bound packet socket.
func Writev(fd int, iov []unix.Iovec) (int, error) {
	n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// AppendPacket appends iovecs for hdr, then for each of parts: one packet
// (a virtio-net header and a frame in pieces, say) for WritePacket.
func AppendPacket(iov []unix.Iovec, hdr []byte, parts [][]byte) []unix.Iovec {
	iov = Append(iov, hdr)
	for _, p := range parts {
		iov = Append(iov, p)
	}
	return iov
}

// WritePacket writes one packet from its pieces with writev, again when a
// signal interrupted it. A descriptor that cannot take it now (EAGAIN,
// ENOBUFS) gives ErrWouldBlock; other errors come back as the errno.
// It clears iov after the write, so the scratch keeps no references to the
// caller's buffers.
func WritePacket(fd int, iov []unix.Iovec) error {
	defer clear(iov)
	for {
		_, err := Writev(fd, iov)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS:
			return ErrWouldBlock
		}
		return err
	}
}
