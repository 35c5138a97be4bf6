package bench

import (
	"encoding/binary"
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

// The relay mode's frames are RTP with a valid UDP checksum after each
// stamp, each to its leg's relay port, round-robin over the legs.
func TestRelayFramesAreValid(t *testing.T) {
	legs := []genLeg{
		{Src: netip.AddrPortFrom(peerV4.Addr(), 10000), Dst: netip.AddrPortFrom(stackV4.Addr(), 20002)},
		{Src: netip.AddrPortFrom(peerV4.Addr(), 10002), Dst: netip.AddrPortFrom(stackV4.Addr(), 20000)},
		{Src: netip.AddrPortFrom(peerV4.Addr(), 10004), Dst: netip.AddrPortFrom(stackV4.Addr(), 20006)},
		{Src: netip.AddrPortFrom(peerV4.Addr(), 10006), Dst: netip.AddrPortFrom(stackV4.Addr(), 20004)},
	}
	rf, err := newRelayFrames(genRequest{SrcMAC: net.HardwareAddr(peerMAC).String(), DstMAC: net.HardwareAddr(stackMAC).String(), Legs: legs, Size: 172})
	if err != nil {
		t.Fatal(err)
	}
	rf.step = 3
	for seq := range uint64(10) {
		i := int(seq % 3)
		rf.stamp(i, seq, seq*977+1)
		f := rf.slots()[i]
		leg := legs[seq%4]
		u := header.UDP(f[header.EthernetMinimumSize+header.IPv4MinimumSize:])
		p := u.Payload()
		if !u.IsChecksumValid(stack.AddrFrom(leg.Src.Addr()), stack.AddrFrom(leg.Dst.Addr()), checksum.Checksum(p, 0)) {
			t.Errorf("seq %d: bad UDP checksum %#04x", seq, u.Checksum())
		}
		if u.SourcePort() != leg.Src.Port() || u.DestinationPort() != leg.Dst.Port() || len(p) != 172 {
			t.Errorf("seq %d: ports %d→%d, %d bytes; want %v→%v, 172", seq, u.SourcePort(), u.DestinationPort(), len(p), leg.Src, leg.Dst)
		}
		if p[0] != 0x80 || binary.BigEndian.Uint16(p[2:]) != uint16(seq/4) || binary.BigEndian.Uint32(p[8:]) != uint32(seq%4) {
			t.Errorf("seq %d: RTP header % x, want version 2, sequence %d, SSRC %d", seq, p[:12], seq/4, seq%4)
		}
		probe := p[relayProbeOffset:]
		if binary.BigEndian.Uint32(probe) != probeMagic || binary.BigEndian.Uint32(probe[4:]) != 3 || binary.BigEndian.Uint64(probe[8:]) != seq || binary.BigEndian.Uint64(probe[16:]) != seq*977+1 {
			t.Errorf("seq %d: probe fields % x", seq, probe[:probeHeaderLen])
		}
	}
}
