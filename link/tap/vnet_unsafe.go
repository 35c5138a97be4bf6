//go:build linux

package tap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// appendIovec appends an iovec for b (skipped when empty).
func appendIovec(iov []unix.Iovec, b []byte) []unix.Iovec {
	if len(b) == 0 {
		return iov
	}
	v := unix.Iovec{Base: unsafe.SliceData(b)}
	v.SetLen(len(b))
	return append(iov, v)
}

// readv reads one frame into hdr then buf, with iov as scratch, without
// allocating (unix.Readv allocates its iovecs).
func readv(fd int, iov []unix.Iovec, hdr, buf []byte) (int, error) {
	iov[0].Base, iov[1].Base = unsafe.SliceData(hdr), unsafe.SliceData(buf)
	iov[0].SetLen(len(hdr))
	iov[1].SetLen(len(buf))
	n, _, errno := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// writev writes one packet from its pieces.
func writev(fd int, iov []unix.Iovec) (int, error) {
	n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
