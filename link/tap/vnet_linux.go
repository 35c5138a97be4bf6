//go:build linux

package tap

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/iovec"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/vnet"
)

// vnetState is the virtio-net side of a TAP opened with IFF_VNET_HDR. The
// read fields are used by the reader goroutine only, the write fields under
// tapDevice.wmu.
type vnetState struct {
	on   bool
	rhdr [vnet.HdrSize]byte
	riov [2]unix.Iovec

	whdr        [vnet.HdrSize]byte
	wpkts       []vnet.Packet
	writePktsFn func(fd uintptr) bool
}

// zeroVnetHdr goes before frames written with WriteFrames: nothing to
// offload.
var zeroVnetHdr [vnet.HdrSize]byte

// openVnetTAP opens the TAP itself (water cannot ask for IFF_VNET_HDR),
// close-on-exec and non-blocking, and lets the kernel hand over frames with
// checksums left partial (TUN_F_CSUM; no TSO, so frames still fit the MTU).
func openVnetTAP(name string, existing ifaceInfo) (*os.File, string, error) {
	fd, err := unix.Open(tunDevicePath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", existing.openError(name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tap: %w", err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, "", existing.openError(name, err)
	}
	name = ifr.Name()
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tap %s: enabling checksum offload (TUNSETOFFLOAD): %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tap:"+name), name, nil
}

// readSomeVnet is readSome for a vnet TAP: each frame comes after its
// virtio-net header, read in the same readv. A frame marked NEEDS_CSUM has
// its checksum completed here, before the hook or netstack sees it.
func (d *tapDevice) readSomeVnet(fd uintptr) bool {
	v := &d.vnet
	for d.rn < len(d.rbufs) {
		buf := d.rbufs[d.rn]
		n, err := iovec.Readv(int(fd), v.riov[:], v.rhdr[:], buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.poll.Drained(d.rn)
			return d.rn > 0
		case err != nil:
			d.rerr = err
			return true
		case n > len(v.rhdr)+len(buf):
			d.stats.RxTooBig.Add(1)
			continue
		case n <= len(v.rhdr):
			continue
		}
		frame := buf[:n-len(v.rhdr)]
		if !v.completeChecksum(v.rhdr[:], frame, d.stats) {
			continue
		}
		d.rsizes[d.rn] = len(frame)
		d.rn++
		if d.rn == 1 && d.poll.OneIsEnough() {
			return true
		}
	}
	return true
}

// completeChecksum completes the checksum of a frame read after virtio-net
// header hdr when the header says it is partial (NEEDS_CSUM); false drops
// the frame, counted, when the header's offsets do not fit it.
func (v *vnetState) completeChecksum(hdr, frame []byte, stats *DeviceStats) bool {
	var h vnet.Hdr
	_ = h.Unmarshal(hdr)
	if h.Flags&vnet.FlagNeedsCsum == 0 {
		return true
	}
	if vnet.CompletePartial(frame, int(h.CsumStart), int(h.CsumOffset)) != nil {
		stats.RxBadVnetHdr.Add(1)
		return false
	}
	stats.RxChecksumCompleted.Add(1)
	return true
}

// WriteVnet implements ethlink.VnetDevice: each packet is written with its
// virtio-net header in one writev, the frame straight from its pieces.
func (d *tapDevice) WriteVnet(pkts []vnet.Packet) (int, error) {
	if !d.vnet.on {
		return 0, fmt.Errorf("tap %s: not opened with IFF_VNET_HDR", d.name)
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closed.Load() {
		return 0, link.ErrClosed
	}
	if d.deferred != nil {
		d.deferred.Drain() // in order, before these
	}
	d.vnet.wpkts = pkts
	n, err := d.runWrite(d.vnet.writePktsFn)
	d.vnet.wpkts = nil
	return n, err
}

func (d *tapDevice) writeVnetPackets(fd uintptr) bool {
	v := &d.vnet
	for d.wn < len(v.wpkts) {
		p := &v.wpkts[d.wn]
		p.Hdr.MarshalTo(v.whdr[:])
		d.wiov = iovec.AppendPacket(d.wiov[:0], v.whdr[:], p.Parts)
		if !d.writeOne(fd) {
			return true
		}
	}
	return true
}
