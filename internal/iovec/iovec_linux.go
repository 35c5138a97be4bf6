package iovec

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

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
