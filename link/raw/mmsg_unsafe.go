//go:build linux

package raw

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr; Go pads it to the C size (64 bytes on 64-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// sizeofAuxdata is sizeof(struct tpacket_auxdata).
const sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))

// auxdataSpace is the control buffer one message needs for PACKET_AUXDATA.
var auxdataSpace = unix.CmsgSpace(sizeofAuxdata)

// mmsgBatch holds the headers of one recvmmsg or sendmmsg call. It is
// allocated once per direction and reused, so a batch allocates nothing.
type mmsgBatch struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrLinklayer // receive only
	ctrl  []byte                      // receive only: auxdataSpace per message
}

func newRecvBatch(n int) *mmsgBatch {
	return &mmsgBatch{
		msgs:  make([]mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrLinklayer, n),
		ctrl:  make([]byte, n*auxdataSpace),
	}
}

// prepareRecv points the headers at bufs and returns how many messages the
// call may fill.
func (b *mmsgBatch) prepareRecv(bufs [][]byte) int {
	n := min(len(bufs), len(b.msgs))
	for i := 0; i < n; i++ {
		b.iovs[i].Base = unsafe.SliceData(bufs[i])
		b.iovs[i].SetLen(len(bufs[i]))
		m := &b.msgs[i]
		m.hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		m.hdr.Namelen = unix.SizeofSockaddrLinklayer
		m.hdr.Iov = &b.iovs[i]
		m.hdr.SetIovlen(1)
		m.hdr.Control = &b.ctrl[i*auxdataSpace]
		m.hdr.SetControllen(auxdataSpace)
		m.hdr.Flags = 0
		m.len = 0
	}
	return n
}

// prepareSend points the headers at frames, growing the batch if needed.
// The socket is bound, so messages carry no address.
func (b *mmsgBatch) prepareSend(frames [][]byte) {
	if len(frames) > len(b.msgs) {
		b.msgs = make([]mmsghdr, len(frames))
		b.iovs = make([]unix.Iovec, len(frames))
	}
	for i, f := range frames {
		b.iovs[i].Base = unsafe.SliceData(f)
		b.iovs[i].SetLen(len(f))
		b.msgs[i] = mmsghdr{}
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.SetIovlen(1)
	}
}

// auxdata returns message i's PACKET_AUXDATA, if present.
func (b *mmsgBatch) auxdata(i int) (unix.TpacketAuxdata, bool) {
	if int(b.msgs[i].hdr.Controllen) < unix.CmsgLen(sizeofAuxdata) {
		return unix.TpacketAuxdata{}, false
	}
	return auxdataIn(b.ctrl[i*auxdataSpace : (i+1)*auxdataSpace])
}

// auxdataIn returns the PACKET_AUXDATA that control data ctrl starts
// with, if it does.
func auxdataIn(ctrl []byte) (unix.TpacketAuxdata, bool) {
	if len(ctrl) < unix.CmsgLen(sizeofAuxdata) {
		return unix.TpacketAuxdata{}, false
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	if h.Level != unix.SOL_PACKET || h.Type != unix.PACKET_AUXDATA || int(h.Len) < unix.CmsgLen(sizeofAuxdata) {
		return unix.TpacketAuxdata{}, false
	}
	return *(*unix.TpacketAuxdata)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])), true
}

// recvmmsg receives up to len(msgs) messages without blocking.
func recvmmsg(fd int, msgs []mmsghdr) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// sendmmsg sends up to len(msgs) messages without blocking and returns how
// many went.
func sendmmsg(fd int, msgs []mmsghdr) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// pkttypeIn returns the packet type of a received frame's sockaddr_ll
// name; 0 (PACKET_HOST) when name is too short to hold one.
func pkttypeIn(name []byte) uint8 {
	if len(name) < unix.SizeofSockaddrLinklayer {
		return unix.PACKET_HOST
	}
	return (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&name[0])).Pkttype
}
