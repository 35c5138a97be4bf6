//go:build linux

package deferwrite

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uring is a minimal io_uring: the reader's pending writes and its poll
// for the next frame go to the kernel in one io_uring_enter that then
// waits, so the wake-up the writes cause (the kernel's receive for their
// destination) meets the reader asleep instead of preempting it on its way
// back from a write.
type uring struct {
	fd                     int
	sqMem, cqMem, sqeMem   []byte
	sqHead, sqTail, sqMask *uint32
	sqArray                unsafe.Pointer
	cqHead, cqTail, cqMask *uint32
	cqes                   unsafe.Pointer
	sqes                   unsafe.Pointer
	entries                uint32
	pollArmed, wakeArmed   bool
}

// The io_uring ABI's numbers this file uses (include/uapi/linux/io_uring.h).
const (
	uringSetupCQSize       = 1 << 3
	uringSetupSingleIssuer = 1 << 12
	uringSetupDeferTaskrun = 1 << 13
	uringOpReadMultishot   = 49
	uringOpAsyncCancel     = 14
	uringOpRecvMsg         = 10
	uringRecvMultishot     = 1 << 1 // in the SQE's ioprio
	uringRecvMsgOutSize    = 16     // struct io_uring_recvmsg_out
	uringSQEBufferSelect   = 1 << 5
	uringRegisterProbe     = 8
	uringRegisterPbufRing  = 22
	uringCQEFBuffer        = 1 << 0
	uringCQEFMore          = 1 << 1
	uringCQEBufferShift    = 16
	uringProbeOpSupported  = 1
	uringProbeOps          = 256
	uringBufRingEntrySize  = 16 // struct io_uring_buf
	uringBufRingTailOffset = 14 // the ring's tail, in its first entry's resv
	uringBufRingBidOffset  = 12 // the first entry's bid, below the tail
)

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

type uringSQE struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len, opFlags  uint32
	userData      uint64
	bufIndex      uint16
	personality   uint16
	spliceFdIn    int32
	addr3, pad    uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

const (
	uringOpWritev   = 2
	uringOpPollAdd  = 6
	uringEnterWait  = 1
	uringPollData   = 1 << 62
	uringWakeData   = 1<<62 + 1
	uringReadData   = 1<<62 + 2
	uringCancelData = 1<<62 + 3
)

func newURing(entries uint32) (*uring, error) {
	return newURingFlags(entries, 0, 0)
}

// newURingFlags sets up a ring with setup flags and, when cqEntries is not
// 0, a completion queue of that size.
func newURingFlags(entries, cqEntries, flags uint32) (*uring, error) {
	p := uringParams{flags: flags}
	if cqEntries > 0 {
		p.flags |= uringSetupCQSize
		p.cqEntries = cqEntries
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &uring{fd: int(fd), entries: p.sqEntries}
	var err error
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	if r.sqMem, err = unix.Mmap(r.fd, 0, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, err
	}
	if r.cqMem, err = unix.Mmap(r.fd, 0x8000000, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, err
	}
	if r.sqeMem, err = unix.Mmap(r.fd, 0x10000000, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, err
	}
	sq, cq := unsafe.Pointer(&r.sqMem[0]), unsafe.Pointer(&r.cqMem[0])
	r.sqHead, r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.head)), (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask, r.sqArray = (*uint32)(unsafe.Add(sq, p.sqOff.ringMask)), unsafe.Add(sq, p.sqOff.array)
	r.cqHead, r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.head)), (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask, r.cqes = (*uint32)(unsafe.Add(cq, p.cqOff.ringMask)), unsafe.Add(cq, p.cqOff.cqes)
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	return r, nil
}

func (r *uring) close() {
	for _, m := range [][]byte{r.sqMem, r.cqMem, r.sqeMem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	unix.Close(r.fd)
}

// push queues one SQE; false when the ring is full.
func (r *uring) push(sqe uringSQE) bool {
	tail := *r.sqTail
	if tail-atomic.LoadUint32(r.sqHead) >= r.entries {
		return false
	}
	i := tail & *r.sqMask
	*(*uringSQE)(unsafe.Add(r.sqes, uintptr(i)*unsafe.Sizeof(uringSQE{}))) = sqe
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(i)*4)) = i
	atomic.StoreUint32(r.sqTail, tail+1)
	return true
}

func (r *uring) writev(fd int, iov []unix.Iovec, data uint64) bool {
	return r.push(uringSQE{opcode: uringOpWritev, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&iov[0]))), len: uint32(len(iov)), userData: data})
}

func (r *uring) pollIn(fd int, data uint64) bool {
	return r.push(uringSQE{opcode: uringOpPollAdd, fd: int32(fd), opFlags: unix.POLLIN, userData: data})
}

// readMultishot reads fd again and again, each frame into a buffer of
// group bgid, until it fails or the group runs out of buffers.
func (r *uring) readMultishot(fd int, bgid uint16, data uint64) bool {
	return r.push(uringSQE{opcode: uringOpReadMultishot, flags: uringSQEBufferSelect, fd: int32(fd), bufIndex: bgid, userData: data})
}

// recvMsgMultishot receives messages on socket fd again and again, each
// into a buffer of group bgid laid out as io_uring_recvmsg_out, the name,
// the control data and the payload (msg says how much room the name and
// the control data get; the kernel copies it when it takes the entry).
func (r *uring) recvMsgMultishot(fd int, bgid uint16, msg *unix.Msghdr, data uint64) bool {
	return r.push(uringSQE{opcode: uringOpRecvMsg, flags: uringSQEBufferSelect, ioprio: uringRecvMultishot, fd: int32(fd),
		addr: uint64(uintptr(unsafe.Pointer(msg))), len: 1, bufIndex: bgid, userData: data})
}

// cancel cancels the request whose user data is target.
func (r *uring) cancel(target, data uint64) bool {
	return r.push(uringSQE{opcode: uringOpAsyncCancel, fd: -1, addr: target, userData: data})
}

// supports reports whether the kernel knows opcode op (IORING_REGISTER_PROBE).
func (r *uring) supports(op uint8) bool {
	var probe struct {
		lastOp, opsLen uint8
		resv           uint16
		resv2          [3]uint32
		ops            [uringProbeOps]struct {
			op, resv uint8
			flags    uint16
			resv2    uint32
		}
	}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uringRegisterProbe, uintptr(unsafe.Pointer(&probe)), uringProbeOps, 0, 0)
	return errno == 0 && op <= probe.lastOp && probe.ops[op].flags&uringProbeOpSupported != 0
}

// bufRing is a ring of provided buffers (IORING_REGISTER_PBUF_RING): the
// kernel takes one for each frame a multishot read brings; add gives one
// back. Ring and buffers are mmapped, out of Go's heap, since the kernel
// holds their addresses.
type bufRing struct {
	ring, bufs []byte
	size       int    // of one buffer
	mask, tail uint16 // tail: the next entry add writes
}

// registerBufRing registers count buffers of size bytes (count a power of
// two) as group bgid, all given to the kernel.
func (r *uring) registerBufRing(bgid uint16, count, size int) (*bufRing, error) {
	ring, err := unix.Mmap(-1, 0, count*uringBufRingEntrySize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	bufs, err := unix.Mmap(-1, 0, count*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(ring)
		return nil, err
	}
	b := &bufRing{ring: ring, bufs: bufs, size: size, mask: uint16(count - 1)}
	reg := struct {
		ringAddr    uint64
		ringEntries uint32
		bgid, flags uint16
		resv        [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&ring[0]))), ringEntries: uint32(count), bgid: bgid}
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uringRegisterPbufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); errno != 0 {
		b.close()
		return nil, fmt.Errorf("io_uring_register(PBUF_RING): %w", errno)
	}
	for bid := 0; bid < count; bid++ {
		b.put(uint16(bid))
	}
	b.publish()
	return b, nil
}

// buf returns buffer bid's first n bytes (n at most its size).
func (b *bufRing) buf(bid uint16, n int) []byte {
	off := int(bid&b.mask) * b.size
	return b.bufs[off : off+n : off+b.size]
}

// put writes buffer bid into the ring's next entry; publish hands the
// entries put since the last publish to the kernel.
func (b *bufRing) put(bid uint16) {
	e := unsafe.Pointer(&b.ring[int(b.tail&b.mask)*uringBufRingEntrySize])
	*(*uint64)(e) = uint64(uintptr(unsafe.Pointer(&b.bufs[int(bid)*b.size])))
	*(*uint32)(unsafe.Add(e, 8)) = uint32(b.size)
	*(*uint16)(unsafe.Add(e, 12)) = bid
	b.tail++
}

// publish stores the tail with release order. The tail shares its 32-bit
// word with the first entry's bid, which only put writes: the word is
// stored whole, with that bid as it is, each half where the machine's byte
// order puts it.
func (b *bufRing) publish() {
	word := (*uint32)(unsafe.Pointer(&b.ring[uringBufRingBidOffset]))
	bid0 := uint32(*(*uint16)(unsafe.Pointer(&b.ring[uringBufRingBidOffset])))
	if littleEndian {
		atomic.StoreUint32(word, uint32(b.tail)<<16|bid0)
	} else {
		atomic.StoreUint32(word, bid0<<16|uint32(b.tail))
	}
}

// littleEndian: the low half of a 32-bit word is at its lower address.
var littleEndian = func() bool {
	w := uint32(1)
	return *(*byte)(unsafe.Pointer(&w)) == 1
}()

func (b *bufRing) close() {
	unix.Munmap(b.ring)
	unix.Munmap(b.bufs)
}

// enter submits every entry queued and not yet submitted (the kernel's
// head says which: an earlier enter that failed may have left some) and
// waits for wait completions.
func (r *uring) enter(wait uint32) error {
	for {
		flags := uintptr(0)
		if wait > 0 {
			flags = uringEnterWait
		}
		queued := *r.sqTail - atomic.LoadUint32(r.sqHead)
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(queued), uintptr(wait), flags, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// next consumes one completion: its user data and result; ok is false
// when there is none.
func (r *uring) next() (data uint64, res int32, ok bool) {
	data, res, _, ok = r.nextFlags()
	return data, res, ok
}

// nextFlags is next with the completion's flags.
func (r *uring) nextFlags() (data uint64, res int32, flags uint32, ok bool) {
	head := *r.cqHead
	if head == atomic.LoadUint32(r.cqTail) {
		return 0, 0, 0, false
	}
	c := (*uringCQE)(unsafe.Add(r.cqes, uintptr(head&*r.cqMask)*unsafe.Sizeof(uringCQE{})))
	data, res, flags = c.userData, c.res, c.flags
	atomic.StoreUint32(r.cqHead, head+1)
	return data, res, flags, true
}
