//go:build linux

package tap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/deferwrite"
	"github.com/mediastack/mediastack/internal/iovec"
	"github.com/mediastack/mediastack/internal/linkstats"
	"github.com/mediastack/mediastack/internal/pollread"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
)

// tunDevicePath is the TUN/TAP clone device; a variable so tests can point
// it at a path that does not exist.
var tunDevicePath = "/dev/net/tun"

// capHint is appended to every permission error.
const capHint = "needs CAP_NET_ADMIN (run as root or setcap cap_net_admin,cap_net_raw+ep)"

// iffPersist is IFF_PERSIST as the kernel reports it in tun_flags.
const iffPersist = 0x800

func openDevice(name string, mtu uint32, stats *DeviceStats) (device, string, error) {
	return openDeviceMode(name, mtu, stats, false)
}

// openDeviceMode opens the TAP with water, or, with vnet, itself with
// IFF_VNET_HDR (water cannot ask for it).
func openDeviceMode(name string, mtu uint32, stats *DeviceStats, vnet bool) (device, string, error) {
	if _, err := os.Stat(tunDevicePath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("tap: %s is missing: load the tun module (modprobe tun), or give the container the device (--device /dev/net/tun)", tunDevicePath)
		}
		return nil, "", fmt.Errorf("tap: %w", err)
	}
	var existing ifaceInfo
	if name != "" {
		var err error
		if existing, err = inspect(name); err != nil {
			return nil, "", err
		}
		if err := existing.notTAP(name); err != nil {
			return nil, "", err
		}
	}
	// water clears IFF_PERSIST when it attaches; remember it so a
	// persistent TAP made by the admin outlives us.
	persistent := existing.isTAP() && (existing.persist || tunFlags(name)&iffPersist != 0)
	// water leaks its descriptor when TUNSETIFF fails; the checks above
	// catch the common causes (a name taken by another kind of device)
	// first, so only a permission failure leaves one behind.
	open := openTAP
	if vnet {
		open = openVnetTAP
	}
	f, name, err := open(name, existing)
	if err != nil {
		return nil, "", err
	}
	d, err := newTAPDevice(f, name, stats, vnet)
	if err != nil {
		return nil, "", err
	}
	if persistent {
		if err := d.setPersist(); err != nil {
			_ = d.Close()
			return nil, "", err
		}
	}
	if err := bringUp(d.name, mtu); err != nil {
		_ = d.Close()
		return nil, "", err
	}
	if d.counters, err = linkstats.Open(d.name); err != nil {
		_ = d.Close()
		return nil, "", err
	}
	return d, d.name, nil
}

// openTAP opens the TAP with water and marks the descriptor close-on-exec,
// which water does not: a child process (a capture tool, a shell) would
// otherwise inherit it and keep the TAP alive after we close it. Holding
// ForkLock keeps a concurrent fork from taking it in between.
func openTAP(name string, existing ifaceInfo) (*os.File, string, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	ifce, err := water.New(water.Config{
		DeviceType:             water.TAP,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: name},
	})
	if err != nil {
		return nil, "", existing.openError(name, err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		_ = ifce.Close()
		return nil, "", fmt.Errorf("tap: water returned a %T, want an *os.File", ifce.ReadWriteCloser)
	}
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { unix.CloseOnExec(int(fd)) })
	}
	if err != nil {
		_ = f.Close()
		return nil, "", fmt.Errorf("tap %s: %w", ifce.Name(), err)
	}
	return f, ifce.Name(), nil
}

// openError turns TUNSETIFF's error on the interface as inspected before
// into one line that says what to fix.
func (existing ifaceInfo) openError(name string, err error) error {
	shown := name
	if shown == "" {
		shown = "(any name)"
	}
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return existing.permissionError(shown, os.Geteuid(), err)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("tap: %s has no driver: load the tun module (modprobe tun): %w", tunDevicePath, err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("tap: interface %s exists and is not a TAP device; pick another name or delete it: %w", shown, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("tap: TAP %s is in use by another process: %w", shown, err)
	default:
		return fmt.Errorf("tap: creating TAP %s: %w", shown, err)
	}
}

// tunFlags reads the TAP's flags from sysfs; 0 when they cannot be read.
func tunFlags(name string) uint64 {
	b, err := os.ReadFile("/sys/class/net/" + name + "/tun_flags")
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 64)
	if err != nil {
		return 0
	}
	return v
}

func controlSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("tap: opening a control socket: %w", err)
	}
	return fd, nil
}

// bringUp sets the device's MTU and sets it up, touching only what differs,
// so attaching to a prepared persistent TAP needs no privilege.
func bringUp(name string, mtu uint32) error {
	fd, err := controlSocket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	fail := func(what string, err error) error {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("tap: %s of %s %s: %w", what, name, capHint, err)
		}
		return fmt.Errorf("tap: %s of %s: %w", what, name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return fail("reading the MTU", err)
	}
	if ifr.Uint32() != mtu {
		ifr.SetUint32(mtu)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
			return fail(fmt.Sprintf("setting MTU %d", mtu), err)
		}
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fail("reading the flags", err)
	}
	if flags := ifr.Uint16(); flags&unix.IFF_UP == 0 {
		ifr.SetUint16(flags | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fail("setting the link up", err)
		}
	}
	return nil
}

// tapDevice reads and writes frames on the TAP descriptor, which it takes
// out of Go's netpoller (internal/pollread): a read that would block parks
// the reader's thread in poll(2), so a frame arriving alone wakes that
// thread only, and Close wakes it. Writes never wait.
type tapDevice struct {
	name     string
	file     *pollread.File
	rc       syscall.RawConn // file's
	closed   atomic.Bool
	stats    *DeviceStats
	counters *linkstats.Reader // the interface's own; nil until open

	// Reader state, used only by the one goroutine in ReadFrames. The
	// callbacks are bound once so a read allocates nothing.
	poll   *pollread.Poller // file's
	rbufs  [][]byte
	rsizes []int
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wframes [][]byte
	wiov    []unix.Iovec // the packet being written
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
	// writeDirectFn is writeDirect, bound once (deferwrite's direct write).
	writeDirectFn func(frames [][]byte) (int, error)

	// With IFF_VNET_HDR every frame read or written carries a virtio-net
	// header (vnet_linux.go).
	vnet vnetState

	// deferred, when set, takes the frames written between two ReadFrames
	// (the reader's own replies, and anything else written meanwhile) and
	// writes them with the next wait for a frame, in one io_uring_enter
	// (internal/deferwrite); nil without io_uring. Once BindReader bound
	// it, it reads the frames too (ringRead).
	deferred *deferwrite.Writer
	ringRead bool
	// ringGone: the ring's reader left after ringErr (no more reads; the
	// reader goroutine's alone).
	ringGone bool
	ringErr  error
	// ringReadFn and takeFn are readRing and takeFrame, bound once.
	ringReadFn func(fd uintptr) bool
	takeFn     func(data []byte) bool
}

// newTAPDevice takes f, closing it on error.
func newTAPDevice(f *os.File, name string, stats *DeviceStats, vnet bool) (*tapDevice, error) {
	file, err := pollread.Open(f)
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	d := &tapDevice{name: name, file: file, rc: file.RawConn(), poll: file.Poller(), stats: stats}
	d.readFn = d.readSome
	d.ringReadFn = d.readRing
	d.takeFn = d.takeFrame
	d.writeFn = d.writeAll
	d.writeDirectFn = d.writeDirect
	var hdr []byte
	if vnet {
		d.vnet.on = true
		d.readFn = d.readSomeVnet
		d.vnet.writePktsFn = d.writeVnetPackets
		hdr = zeroVnetHdr[:]
	}
	d.deferred = deferwrite.Open(deferwrite.Options{
		Poller: d.poll, Lock: &d.wmu, Closed: &d.closed, Header: hdr, Write: d.writeDirectFn,
		Deferred: &stats.TxDeferred, Errors: &stats.TxDeferredErrors,
	})
	return d, nil
}

func (d *tapDevice) setPersist() error {
	var ioctlErr error
	err := d.rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, 1)
	})
	if err == nil {
		err = ioctlErr
	}
	if err != nil {
		return fmt.Errorf("tap %s: keeping the device persistent: %w", d.name, err)
	}
	return nil
}

// ReadFrames implements ethlink.BatchReader: it waits for one frame, then
// takes whatever else is already queued, up to len(bufs).
func (d *tapDevice) ReadFrames(bufs [][]byte, sizes []int) (int, error) {
	if d.ringGone {
		return 0, d.ringErr
	}
	if d.closed.Load() {
		if d.ringRead {
			// Closed while the reader dispatched: the ring's read
			// still holds the TAP.
			d.leaveRing(link.ErrClosed)
		}
		return 0, link.ErrClosed
	}
	d.rbufs, d.rsizes, d.rn, d.rerr = bufs, sizes, 0, nil
	if d.deferred != nil {
		d.deferred.StopDeferring()
	}
	read := d.readFn
	if d.ringRead {
		read = d.ringReadFn
	}
	err := d.file.Read(read)
	n := d.rn
	if err == nil {
		err = d.rerr
	}
	d.rbufs, d.rsizes = nil, nil
	if err != nil {
		err = d.readError(err)
		if d.ringRead {
			d.leaveRing(err)
		}
		return n, err
	}
	if d.deferred != nil {
		// The reader comes back: what the dispatch writes can wait for
		// it. After an error it may not.
		d.deferred.StartDeferring()
	}
	return n, nil
}

// BindReader implements ethlink.ReaderBinder: from now on the calling
// goroutine, locked to its thread, reads through the write ring
// (deferwrite.Writer.BindReading): a multishot read takes the frames as
// they come, and one io_uring_enter per batch submits the batch's replies
// and waits for the next frames, instead of a read(2) per frame. Where the
// kernel cannot, reads stay on poll(2) and read(2).
func (d *tapDevice) BindReader(bufSize int) {
	if d.deferred == nil {
		return
	}
	size := bufSize
	if d.vnet.on {
		size += vnet.HdrSize
	}
	if d.closed.Load() {
		return
	}
	var err error
	if cerr := d.rc.Control(func(fd uintptr) { err = d.deferred.BindReading(int(fd), size) }); cerr != nil {
		err = cerr
	}
	d.ringRead = err == nil
}

// leaveRing is the ring reader's last step, on its thread, after a read
// failed with err or was woken to close: the multishot read is cancelled,
// so the ring no longer holds the TAP (deferwrite.Writer.LeaveReading).
// Later reads return err: the ring is the reader thread's, and the errors
// that end it (the TAP deleted, Close) are for good.
func (d *tapDevice) leaveRing(err error) {
	d.ringGone, d.ringErr = true, err
	d.deferred.LeaveReading()
}

// readRing reads through the ring (BindReader): it returns with a frame
// or more, an error, or once woken.
func (d *tapDevice) readRing(uintptr) bool {
	d.rn, d.rerr = d.deferred.ReadFrames(d.poll, len(d.rbufs), d.takeFn)
	d.stats.RxRing.Add(uint64(d.rn))
	if n := d.deferred.TakeTooBig(); n > 0 {
		d.stats.RxTooBig.Add(uint64(n))
	}
	if d.rerr != nil {
		// Before Close, waiting for this read to return, closes the
		// descriptor: the TAP goes with it.
		_ = d.deferred.StopReading()
	}
	return true
}

// takeFrame copies one frame the ring read (after its virtio-net header on
// a vnet TAP) into the next buffer; false drops it (counted, but for a
// read no longer than the header, which holds no frame).
func (d *tapDevice) takeFrame(data []byte) bool {
	hdr := 0
	if d.vnet.on {
		hdr = vnet.HdrSize
	}
	if len(data) <= hdr {
		return false
	}
	buf := d.rbufs[d.rn]
	if len(data)-hdr > len(buf) {
		d.stats.RxTooBig.Add(1)
		return false
	}
	frame := buf[:copy(buf, data[hdr:])]
	if d.vnet.on && !d.vnet.completeChecksum(data[:hdr], frame, d.stats) {
		return false
	}
	d.rsizes[d.rn] = len(frame)
	d.rn++
	return true
}

// readSome reads what is queued: false means "nothing yet, wait".
func (d *tapDevice) readSome(fd uintptr) bool {
	for d.rn < len(d.rbufs) {
		buf := d.rbufs[d.rn]
		n, err := unix.Read(int(fd), buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.poll.Drained(d.rn)
			return d.rn > 0
		case err != nil:
			d.rerr = err
			return true
		case n > len(buf):
			// The kernel reports the full length of a frame it cut to
			// fit: drop it rather than deliver a truncated frame.
			d.stats.RxTooBig.Add(1)
			continue
		case n == 0:
			continue
		}
		d.rsizes[d.rn] = n
		d.rn++
		if d.rn == 1 && d.poll.OneIsEnough() {
			return true
		}
	}
	return true
}

func (d *tapDevice) readError(err error) error {
	if d.closed.Load() {
		return link.ErrClosed
	}
	if deviceGone(err) {
		return fmt.Errorf("tap %s: %w: %w", d.name, ErrDeviceGone, err)
	}
	return fmt.Errorf("tap %s: read: %w", d.name, err)
}

// deviceGone reports whether err means the TAP was deleted under us: read and
// write fail with EBADFD.
func deviceGone(err error) bool {
	return errors.Is(err, unix.EBADFD)
}

// WriteFrames implements ethlink.Device, one write(2) per frame (a TAP takes
// exactly one frame per write).
func (d *tapDevice) WriteFrames(frames [][]byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closed.Load() {
		return 0, link.ErrClosed
	}
	if d.deferred != nil && d.deferred.Queue(frames) {
		return len(frames), nil
	}
	return d.writeDirect(frames)
}

// writeDirect writes frames now (d.wmu held).
func (d *tapDevice) writeDirect(frames [][]byte) (int, error) {
	d.wframes = frames
	n, err := d.runWrite(d.writeFn)
	d.wframes = nil
	return n, err
}

// runWrite runs a write callback through the poller with d.wmu held and
// turns its outcome into WriteFrames' errors.
func (d *tapDevice) runWrite(fn func(fd uintptr) bool) (int, error) {
	d.wn, d.werr = 0, nil
	err := d.rc.Write(fn)
	n := d.wn
	if err == nil {
		err = d.werr
	}
	switch {
	case err == nil:
		return n, nil
	case d.closed.Load():
		return n, link.ErrClosed
	case errors.Is(err, iovec.ErrWouldBlock):
		return n, link.ErrQueueFull
	case deviceGone(err):
		return n, fmt.Errorf("tap %s: %w: %w", d.name, ErrDeviceGone, err)
	case errors.Is(err, unix.EIO):
		return n, fmt.Errorf("tap %s: the device is down: %w", d.name, err)
	default:
		return n, fmt.Errorf("tap %s: write: %w", d.name, err)
	}
}

// writeAll never waits: a full device is reported as link.ErrQueueFull.
// On a vnet TAP each frame goes after an empty virtio-net header.
func (d *tapDevice) writeAll(fd uintptr) bool {
	for d.wn < len(d.wframes) {
		d.wiov = d.wiov[:0]
		if d.vnet.on {
			d.wiov = iovec.Append(d.wiov, zeroVnetHdr[:])
		}
		d.wiov = iovec.Append(d.wiov, d.wframes[d.wn])
		if !d.writeOne(fd) {
			return true
		}
	}
	return true
}

// writeOne writes the packet d.wiov points at and advances d.wn, or records
// why it could not (a full device is link.ErrQueueFull) and returns false.
func (d *tapDevice) writeOne(fd uintptr) bool {
	if err := iovec.WritePacket(int(fd), d.wiov); err != nil {
		d.werr = err
		return false
	}
	d.wn++
	return true
}

// Close implements ethlink.Device. It wakes a ReadFrames parked in poll and
// waits for it to return, so the descriptor is closed when Close returns
// and the kernel deletes the TAP (unless it is persistent).
func (d *tapDevice) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	if d.counters != nil {
		d.counters.Close()
	}
	err := d.file.Close()
	if d.deferred != nil {
		// A ring bound to the reader is released by the reader as it
		// leaves, if it has not yet.
		d.deferred.Close()
	}
	return err
}

func (d *tapDevice) kernelStats() (linkstats.Counters, error) {
	if d.counters == nil {
		return linkstats.Counters{}, linkstats.ErrNoCounters
	}
	return d.counters.Read()
}
