//go:build linux

package raw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/internal/deferwrite"
	"github.com/mediastack/mediastack/internal/iovec"
	"github.com/mediastack/mediastack/internal/linkstats"
	"github.com/mediastack/mediastack/internal/pollread"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
)

// capHint is appended to every permission error.
const capHint = "needs CAP_NET_RAW (run as root or setcap cap_net_admin,cap_net_raw+ep)"

// socketBufferSize is asked of the kernel for each direction, so a burst
// from a fast peer waits in the socket instead of being dropped.
const socketBufferSize = 4 << 20

func openSocket(name string, mac tcpip.LinkAddress, stats *DeviceStats, segment bool) (device, tcpip.LinkAddress, uint32, error) {
	ifindex, err := interfaceIndex(name)
	if err != nil {
		return nil, "", 0, err
	}
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, "", 0, fmt.Errorf("raw: interface %q not found: %w", name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, "", 0, fmt.Errorf("raw: interface %q is not an Ethernet interface (link address %q)", name, ifi.HardwareAddr)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, "", 0, fmt.Errorf("raw: interface %q is down: bring it up first (ip link set dev %s up)", name, name)
	}
	ifaceMAC := tcpip.LinkAddress(ifi.HardwareAddr)
	if mac == "" {
		mac = ifaceMAC
	}

	// Protocol 0: nothing arrives until bind picks the interface.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, "", 0, fmt.Errorf("raw: opening an AF_PACKET socket on %s %s: %w", name, capHint, err)
		}
		return nil, "", 0, fmt.Errorf("raw: opening an AF_PACKET socket on %s: %w", name, err)
	}
	if err := configureSocket(fd, ifindex, mac != ifaceMAC); err != nil {
		unix.Close(fd)
		return nil, "", 0, fmt.Errorf("raw %s: %w", name, err)
	}
	s, err := newPacketSocket(os.NewFile(uintptr(fd), "packet:"+name), name, ifindex, stats)
	if err != nil {
		return nil, "", 0, err
	}
	if s.counters, err = linkstats.Open(name); err != nil {
		s.Close()
		return nil, "", 0, fmt.Errorf("raw: %w", err)
	}
	if segment {
		seg, err := openSegmentingSocket(s, ifindex)
		if err != nil {
			s.Close()
			return nil, "", 0, fmt.Errorf("raw %s: %w", name, err)
		}
		return seg, mac, uint32(ifi.MTU), nil
	}
	return s, mac, uint32(ifi.MTU), nil
}

// interfaceIndex looks name up with SIOCGIFINDEX, which says precisely
// whether it exists in the caller's network namespace.
func interfaceIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("raw: opening a control socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("raw: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return 0, fmt.Errorf("raw: interface %q not found (ip -br link lists the interfaces)", name)
		}
		return 0, fmt.Errorf("raw: looking up interface %q: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

func configureSocket(fd, ifindex int, promisc bool) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("PACKET_AUXDATA: %w", err)
	}
	// Kernels before 4.20 lack it; the reader also drops PACKET_OUTGOING.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		// The FORCE variant needs CAP_NET_ADMIN; the plain one is capped
		// by net.core.[rw]mem_max. Either is fine.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], socketBufferSize); err != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], socketBufferSize)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if promisc {
		// Frames for a MAC the interface does not own need promiscuous
		// mode; the membership ends when the socket closes.
		mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fmt.Errorf("promiscuous mode for a MAC other than the interface's: %w", err)
		}
	}
	return nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// packetSocket reads and writes frames on the AF_PACKET socket, which it
// takes out of Go's netpoller (internal/pollread): a read that would block
// parks the reader's thread in poll(2), so a frame arriving alone wakes that
// thread only, and Close wakes it. Writes never wait.
type packetSocket struct {
	iface   string
	ifindex int
	file    *pollread.File
	rc      syscall.RawConn // file's
	closed  atomic.Bool
	done    chan struct{} // closed by Close: ends a wait for the interface
	stats   *DeviceStats
	// counters reads the interface's own counters; nil until open.
	counters *linkstats.Reader

	// Reader state, used only by the one goroutine in ReadFrames. The
	// callbacks are bound once so a batch allocates nothing.
	poll   *pollread.Poller // file's
	rx     *mmsgBatch
	rbufs  [][]byte
	rsizes []int
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	tx      mmsgBatch
	wcount  int
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
	// writeDirectFn is writeDirect, bound once (deferwrite's direct write).
	writeDirectFn func(frames [][]byte) (int, error)

	// deferred, when set, takes the frames written between two ReadFrames
	// (the reader's own replies, and anything else written meanwhile) and
	// writes them with the next wait for a frame, in one io_uring_enter
	// (internal/deferwrite); nil without io_uring. Once BindReader bound
	// it, it receives the frames too (ringRead); ringGone: the ring's
	// reader left after ringErr (the reader goroutine's alone).
	deferred *deferwrite.Writer
	ringRead bool
	ringGone bool
	ringErr  error
	// ringReadFn and takeFn are readRing and takeFrame, bound once.
	ringReadFn func(fd uintptr) bool
	takeFn     func(data []byte) bool
}

// newPacketSocket takes f, closing it on error.
func newPacketSocket(f *os.File, iface string, ifindex int, stats *DeviceStats) (*packetSocket, error) {
	file, err := pollread.Open(f)
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", iface, err)
	}
	s := &packetSocket{iface: iface, ifindex: ifindex, file: file, rc: file.RawConn(), poll: file.Poller(),
		done: make(chan struct{}), stats: stats, rx: newRecvBatch(batchSize)}
	s.readFn = s.readSome
	s.ringReadFn = s.readRing
	s.takeFn = s.takeFrame
	s.writeFn = s.writeAll
	s.writeDirectFn = s.writeDirect
	s.deferred = deferwrite.Open(deferwrite.Options{
		Poller: s.poll, Lock: &s.wmu, Closed: &s.closed, Write: s.writeDirectFn,
		Deferred: &stats.TxDeferred, Errors: &stats.TxDeferredErrors,
	})
	return s, nil
}

// ReadFrames implements ethlink.BatchReader with one recvmmsg per batch.
// Dropped frames are skipped by reordering bufs (the buffers are
// interchangeable), so the n frames returned are bufs[:n].
//
// An interface taken down is not the end: the socket reports ENETDOWN
// once, the kernel re-arms the socket when the interface comes back up,
// so ReadFrames counts the flap (DeviceStats.InterfaceDown), waits for
// the interface to be up again and reads on. Only an interface deleted, or
// Close, ends it.
func (s *packetSocket) ReadFrames(bufs [][]byte, sizes []int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	if s.ringGone {
		return 0, s.ringErr
	}
	if s.deferred != nil {
		s.deferred.StopDeferring()
	}
	read := s.readFn
	if s.ringRead {
		read = s.ringReadFn
	}
	for {
		if s.closed.Load() {
			return 0, s.leaveRing(link.ErrClosed)
		}
		s.rbufs, s.rsizes, s.rn, s.rerr = bufs, sizes, 0, nil
		err := s.file.Read(read)
		n := s.rn
		if err == nil {
			err = s.rerr
		}
		s.rbufs, s.rsizes = nil, nil
		if err == nil {
			if s.deferred != nil {
				// The reader comes back: what the dispatch writes
				// can wait for it.
				s.deferred.StartDeferring()
			}
			return n, nil
		}
		if !errors.Is(err, unix.ENETDOWN) || s.closed.Load() {
			return n, s.leaveRing(s.readError(err))
		}
		s.stats.InterfaceDown.Add(1)
		if werr := s.waitUp(); werr != nil {
			return 0, s.leaveRing(s.readError(errors.Join(err, werr)))
		}
	}
}

// BindReader implements ethlink.ReaderBinder: from now on the calling
// goroutine, locked to its thread, receives through the write ring
// (deferwrite.Writer.BindRecvMsg): a multishot recvmsg takes the frames,
// their sockaddr_ll and PACKET_AUXDATA as they come, and one
// io_uring_enter per batch submits the batch's replies and waits for the
// next frames, instead of a recvmmsg and a sendmmsg or io_uring_enter.
// Where the kernel cannot, reads stay on poll(2) and recvmmsg.
func (s *packetSocket) BindReader(bufSize int) {
	if s.deferred == nil || s.closed.Load() {
		return
	}
	var err error
	if cerr := s.rc.Control(func(fd uintptr) {
		err = s.deferred.BindRecvMsg(int(fd), bufSize, unix.SizeofSockaddrLinklayer, auxdataSpace)
	}); cerr != nil {
		err = cerr
	}
	s.ringRead = err == nil
}

// leaveRing is the ring reader's last step, on its thread, when it reads
// no more (err, which it returns): the multishot recvmsg is cancelled, so
// the ring no longer holds the socket (deferwrite.Writer.LeaveReading).
// Later reads return err. Without the ring it only returns err.
func (s *packetSocket) leaveRing(err error) error {
	if s.ringRead && !s.ringGone {
		s.ringGone, s.ringErr = true, err
		s.deferred.LeaveReading()
	}
	return err
}

// readRing receives through the ring (BindReader): it returns with a
// frame or more, an error, or once woken.
func (s *packetSocket) readRing(uintptr) bool {
	s.rn, s.rerr = s.deferred.ReadFrames(s.poll, len(s.rbufs), s.takeFn)
	s.stats.RxRing.Add(uint64(s.rn))
	if n := s.deferred.TakeTooBig(); n > 0 {
		s.stats.RxTruncated.Add(uint64(n))
	}
	if s.rerr != nil && !errors.Is(s.rerr, unix.ENETDOWN) {
		// Before Close, waiting for this read to return, closes the
		// descriptor.
		_ = s.deferred.StopReading()
	}
	return true
}

// takeFrame copies one frame the ring received into the next buffer,
// checked as readSome checks its own; false drops it, counted.
func (s *packetSocket) takeFrame(data []byte) bool {
	m, ok := s.deferred.ParseRecvMsg(data)
	if !ok {
		s.stats.RxTruncated.Add(1)
		return false
	}
	buf := s.rbufs[s.rn]
	truncated := m.Flags&unix.MSG_TRUNC != 0 || m.PayloadLen > len(m.Payload) || len(m.Payload) > len(buf)
	aux, auxOK := auxdataIn(m.Control)
	size, ok := s.frameIn(buf, copy(buf, m.Payload), truncated, pkttypeIn(m.Name), aux, auxOK)
	if !ok {
		return false
	}
	s.rsizes[s.rn] = size
	s.rn++
	return true
}

// interfacePoll is how often a reader whose interface went down looks
// whether it is up again (or gone).
const interfacePoll = 20 * time.Millisecond

// waitUp waits, with no deadline, until the socket's interface is up again.
// It fails when the interface is gone (deleted) or Close is called.
func (s *packetSocket) waitUp() error {
	t := time.NewTicker(interfacePoll)
	defer t.Stop()
	for {
		up, err := interfaceUp(s.ifindex)
		switch {
		case err != nil:
			return err
		case up:
			return nil
		}
		select {
		case <-s.done:
			return link.ErrClosed
		case <-t.C:
		}
	}
}

// interfaceUp reports whether the interface with index ifindex is up;
// ENODEV when there is none.
func interfaceUp(ifindex int) (bool, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return false, err
	}
	ifr.SetUint32(uint32(ifindex))
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		return false, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return false, err
	}
	return ifr.Uint16()&unix.IFF_UP != 0, nil
}

// readSome reads what is queued: false means "nothing yet, wait". A
// batch that came back short emptied the queue.
func (s *packetSocket) readSome(fd uintptr) bool {
	for {
		n := s.rx.prepareRecv(s.rbufs)
		got, err := recvmmsg(int(fd), s.rx.msgs[:n])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			s.poll.Drained(0)
			return false
		case err != nil:
			s.rerr = err
			return true
		}
		if got < n {
			s.poll.Drained(got)
		}
		kept := 0
		for i := 0; i < got; i++ {
			m := &s.rx.msgs[i]
			aux, auxOK := s.rx.auxdata(i)
			size, ok := s.frameIn(s.rbufs[i], int(m.len), m.hdr.Flags&unix.MSG_TRUNC != 0, s.rx.names[i].Pkttype, aux, auxOK)
			if !ok {
				continue
			}
			s.rbufs[kept], s.rbufs[i] = s.rbufs[i], s.rbufs[kept]
			s.rsizes[kept] = size
			kept++
		}
		if kept > 0 {
			s.rn = kept
			return true
		}
	}
}

// frameIn checks a frame read into buf (size bytes, cut to fit when
// truncated) with the packet type and auxiliary data it came with: it
// completes a checksum the kernel left partial, puts back a VLAN tag the
// kernel took off, and returns the frame's size; false drops it, counted.
func (s *packetSocket) frameIn(buf []byte, size int, truncated bool, pkttype uint8, aux unix.TpacketAuxdata, auxOK bool) (int, bool) {
	if truncated {
		s.stats.RxTruncated.Add(1)
		return 0, false
	}
	if pkttype == unix.PACKET_OUTGOING {
		s.stats.RxOutgoing.Add(1)
		return 0, false
	}
	if auxOK && aux.Status&unix.TP_STATUS_CSUMNOTREADY != 0 {
		if vnet.CompleteChecksum(buf[:size]) {
			s.stats.RxChecksumCompleted.Add(1)
		}
	}
	if auxOK && aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
		if size = retag(buf, size, aux); size == 0 {
			s.stats.RxTruncated.Add(1)
			return 0, false
		}
	}
	return size, true
}

// retag puts back the 802.1Q tag that the kernel took off a frame of
// size bytes in buf into the auxiliary data (it always does on receive), so
// that ethlink sees the frame as it was on the wire and keeps only its
// VLAN's. It returns the new size, 0 when buf has no room for the tag.
// Moving the frame's tail by 4 bytes costs a memmove of a media frame's
// size, far less than the recvmmsg that brought it.
func retag(buf []byte, size int, aux unix.TpacketAuxdata) int {
	const macs, tag = 12, 4
	if size < macs || size+tag > len(buf) {
		return 0
	}
	tpid := uint16(0x8100)
	if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && aux.Vlan_tpid != 0 {
		tpid = aux.Vlan_tpid
	}
	copy(buf[macs+tag:size+tag], buf[macs:size])
	binary.BigEndian.PutUint16(buf[macs:], tpid)
	binary.BigEndian.PutUint16(buf[macs+2:], aux.Vlan_tci)
	return size + tag
}

func (s *packetSocket) readError(err error) error {
	switch {
	case s.closed.Load():
		return link.ErrClosed
	case errors.Is(err, unix.ENETDOWN):
		return fmt.Errorf("raw: interface %q went down or was deleted: %w", s.iface, err)
	default:
		return fmt.Errorf("raw %s: recvmmsg: %w", s.iface, err)
	}
}

// WriteFrames implements ethlink.Device with sendmmsg. It never waits: a
// full socket buffer or queue is reported as link.ErrQueueFull. Frames
// written while the reader dispatches a batch go with its next wait
// (internal/deferwrite).
func (s *packetSocket) WriteFrames(frames [][]byte) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return 0, link.ErrClosed
	}
	if s.deferred != nil && s.deferred.Queue(frames) {
		return len(frames), nil
	}
	return s.writeDirect(frames)
}

// writeDirect sends frames now, with one sendmmsg (s.wmu held).
func (s *packetSocket) writeDirect(frames [][]byte) (int, error) {
	s.tx.prepareSend(frames)
	s.wcount, s.wn, s.werr = len(frames), 0, nil
	err := s.rc.Write(s.writeFn)
	n := s.wn
	if err == nil {
		err = s.werr
	}
	if err != nil {
		return n, s.writeError(err, fmt.Sprintf("sendmmsg of a %d-byte frame", len(frames[n])))
	}
	return n, nil
}

// writeError turns a failed write of what into the link's errors.
func (s *packetSocket) writeError(err error, what string) error {
	switch {
	case s.closed.Load():
		return link.ErrClosed
	case errors.Is(err, link.ErrQueueFull):
		return err
	case errors.Is(err, iovec.ErrWouldBlock):
		return link.ErrQueueFull
	case errors.Is(err, unix.EMSGSIZE):
		return fmt.Errorf("raw %s: %s: %w", s.iface, what, link.ErrFrameTooBig)
	case errors.Is(err, unix.ENETDOWN):
		return fmt.Errorf("raw: interface %q is down: %w", s.iface, err)
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		return fmt.Errorf("raw: interface %q is gone (deleted?): %w", s.iface, err)
	default:
		return fmt.Errorf("raw %s: %s: %w", s.iface, what, err)
	}
}

func (s *packetSocket) writeAll(fd uintptr) bool {
	for s.wn < s.wcount {
		n, err := sendmmsg(int(fd), s.tx.msgs[s.wn:s.wcount])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN || err == unix.ENOBUFS:
			s.werr = link.ErrQueueFull
			return true
		case err != nil:
			s.werr = err
			return true
		}
		s.wn += n
	}
	return true
}

// Close implements ethlink.Device. It wakes a ReadFrames parked in poll
// (or waiting for the interface) and waits for it to return, so the socket
// is closed when Close returns.
func (s *packetSocket) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	if s.counters != nil {
		s.counters.Close()
	}
	err := s.file.Close()
	if s.deferred != nil {
		s.deferred.Close()
	}
	return err
}

// readQueueDrops implements device: PACKET_STATISTICS resets on read, so
// its drops are added up in DeviceStats.RxQueueFull.
func (s *packetSocket) readQueueDrops() error {
	if s.closed.Load() {
		return link.ErrClosed
	}
	var st *unix.TpacketStats
	var serr error
	if err := s.rc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	s.stats.RxQueueFull.Add(uint64(st.Drops))
	return nil
}

func (s *packetSocket) interfaceStats() (linkstats.Counters, error) {
	if s.counters == nil {
		return linkstats.Counters{}, linkstats.ErrNoCounters
	}
	return s.counters.Read()
}
