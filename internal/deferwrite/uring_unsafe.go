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
	uringOpWritev  = 2
	uringOpPollAdd = 6
	uringEnterWait = 1
	uringPollData  = 1 << 62
	uringWakeData  = 1<<62 + 1
)

func newURing(entries uint32) (*uring, error) {
	var p uringParams
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

// enter submits what is queued and waits for wait completions.
func (r *uring) enter(submit, wait uint32) error {
	for {
		flags := uintptr(0)
		if wait > 0 {
			flags = uringEnterWait
		}
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(wait), flags, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			submit = 0
			continue
		}
		return errno
	}
}

// next consumes one completion: its user data and result; ok is false
// when there is none.
func (r *uring) next() (data uint64, res int32, ok bool) {
	head := *r.cqHead
	if head == atomic.LoadUint32(r.cqTail) {
		return 0, 0, false
	}
	c := (*uringCQE)(unsafe.Add(r.cqes, uintptr(head&*r.cqMask)*unsafe.Sizeof(uringCQE{})))
	data, res = c.userData, c.res
	atomic.StoreUint32(r.cqHead, head+1)
	return data, res, true
}
