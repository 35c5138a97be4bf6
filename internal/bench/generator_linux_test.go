package bench

import (
	"net"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/stack"
)

// The generator's frames carry a valid UDP checksum after each stamp, and
// the fast filter takes them: a frame it refused would be lost and read as
// the path's loss.
func TestProbeFramesAreValid(t *testing.T) {
	for _, fam := range families {
		for _, size := range []int{probeHeaderLen, 172, 1200} {
			req := genRequest{
				SrcMAC: net.HardwareAddr(peerMAC).String(), DstMAC: net.HardwareAddr(stackMAC).String(),
				Src: netip.AddrPortFrom(fam.peer, peerPort), Dst: netip.AddrPortFrom(fam.local, basePort), Size: size,
			}
			pf, err := newProbeFrames(req, 7)
			if err != nil {
				t.Fatal(err)
			}
			h, err := newHost(hostOptions{fast: true})
			if err != nil {
				t.Fatal(err)
			}
			delivered := 0
			if _, err := h.filter.Register(basePort, basePort, func(*fastfilter.Datagram) { delivered++ }); err != nil {
				t.Fatal(err)
			}
			for i, seq := range []uint64{0, 1, 0xffff, 1 << 40, ^uint64(0)} {
				pf.stamp(i, seq, seq*31+5)
				f := pf.frames[i]
				ipLen := header.IPv4MinimumSize
				if fam.local.Is6() {
					ipLen = header.IPv6MinimumSize
				}
				u := header.UDP(f[header.EthernetMinimumSize+ipLen:])
				sum := checksum.Checksum(u.Payload(), 0)
				if !u.IsChecksumValid(stack.AddrFrom(req.Src.Addr()), stack.AddrFrom(req.Dst.Addr()), sum) {
					t.Errorf("%s/%d seq %d: bad UDP checksum %#04x", fam.name, size, seq, u.Checksum())
				}
				h.link.DeliverFrame(f)
			}
			if delivered != 5 {
				t.Errorf("%s/%d: the fast filter took %d of 5 frames", fam.name, size, delivered)
			}
			h.close()
		}
	}
}
