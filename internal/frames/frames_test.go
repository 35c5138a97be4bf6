package frames_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
)

func TestHostAddresses(t *testing.T) {
	got := []string{
		frames.MAC(254).String(), frames.V4(254).String(), frames.V6(254).String(),
		frames.Prefix(frames.StackV4).String(), frames.Prefix(frames.StackV6).String(),
	}
	want := []string{"02:00:00:00:00:fe", "198.51.100.254", "2001:db8::fe", "198.51.100.2/24", "2001:db8::2/64"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("addresses (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"198.51.100.1/24", "2001:db8::1/64"}, frames.Addrs(frames.Peer)); d != "" {
		t.Errorf("Addrs (-want +got):\n%s", d)
	}
}

// A plain frame is valid as netstack reads it, and ParseUDP gives back what
// it was built from.
func TestUDPRoundTrip(t *testing.T) {
	for _, u := range []frames.UDP{
		{Src: netip.AddrPortFrom(frames.PeerV4, 40000), Dst: netip.AddrPortFrom(frames.StackV4, 20000), Payload: []byte("v4")},
		{Src: netip.AddrPortFrom(frames.PeerV6, 40000), Dst: netip.AddrPortFrom(frames.StackV6, 20000), Payload: []byte("v6")},
	} {
		b := u.Build()
		if len(b) != u.Len() {
			t.Fatalf("%v: built %d bytes, Len says %d", u.Dst, len(b), u.Len())
		}
		got, ok := frames.ParseUDP(b)
		want := frames.Datagram{DstMAC: frames.StackMAC, Src: u.Src, Dst: u.Dst, Payload: u.Payload}
		if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); !ok || d != "" {
			t.Errorf("ParseUDP = %v (-want +got):\n%s", ok, d)
		}
		var ip header.Network = header.IPv6(b[header.EthernetMinimumSize:])
		if u.Dst.Addr().Is4() {
			v4 := header.IPv4(b[header.EthernetMinimumSize:])
			if !v4.IsChecksumValid() {
				t.Errorf("%v: bad IPv4 header checksum", u.Dst)
			}
			ip = v4
		}
		udp := header.UDP(ip.Payload())
		if !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) {
			t.Errorf("%v: bad UDP checksum", u.Dst)
		}
	}
}

func TestUDPVariants(t *testing.T) {
	base := frames.UDP{Src: netip.AddrPortFrom(frames.PeerV4, 40000), Dst: netip.AddrPortFrom(frames.StackV4, 20000), Payload: []byte("x")}

	tagged := base
	tagged.Tagged, tagged.VID = true, 42
	b := tagged.Build()
	if tpid, tci := binary.BigEndian.Uint16(b[12:]), binary.BigEndian.Uint16(b[14:]); tpid != 0x8100 || tci != 5<<13|42 {
		t.Errorf("tag %#x %#x, want 0x8100 and priority 5, VID 42", tpid, tci)
	}
	if _, ok := frames.ParseUDP(b); ok {
		t.Error("ParseUDP read a tagged frame")
	}

	frag := base
	frag.Flags, frag.FragmentOffset, frag.IPOptions = header.IPv4FlagMoreFragments, 24, []byte{1, 1, 1, 0}
	ip := header.IPv4(frag.Build()[header.EthernetMinimumSize:])
	if !ip.More() || ip.FragmentOffset() != 24 || ip.HeaderLength() != 24 || !ip.IsChecksumValid() {
		t.Errorf("fragment: more %v offset %d header length %d checksum valid %v", ip.More(), ip.FragmentOffset(), ip.HeaderLength(), ip.IsChecksumValid())
	}

	stale := base
	stale.MutateIP, stale.StaleIPv4Checksum = func(b []byte) { b[8]-- }, true
	if header.IPv4(stale.Build()[header.EthernetMinimumSize:]).IsChecksumValid() {
		t.Error("StaleIPv4Checksum: the checksum was computed again")
	}

	ext := frames.UDP{Src: netip.AddrPortFrom(frames.PeerV6, 40000), Dst: netip.AddrPortFrom(frames.StackV6, 20000),
		Extension: true, ExtensionID: header.IPv6FragmentExtHdrIdentifier}
	v6 := header.IPv6(ext.Build()[header.EthernetMinimumSize:])
	if v6.NextHeader() != uint8(header.IPv6FragmentExtHdrIdentifier) || v6.PayloadLength() != 8+header.UDPMinimumSize {
		t.Errorf("extension: next header %d, payload length %d", v6.NextHeader(), v6.PayloadLength())
	}
}

func TestNeighborFrames(t *testing.T) {
	arp := frames.GratuitousARP(header.ARPRequest, frames.PeerV4, frames.PeerMAC)
	if !frames.IsARPRequest(arp, frames.PeerV4) || frames.IsARPRequest(arp, frames.StackV4) {
		t.Error("IsARPRequest does not recognise a gratuitous request for its own address only")
	}
	na := frames.UnsolicitedNA(frames.PeerV6, frames.PeerMAC)
	ip := header.IPv6(na[header.EthernetMinimumSize:])
	icmp := header.ICMPv6(ip.Payload())
	sent := icmp.Checksum()
	icmp.SetChecksum(0)
	want := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()})
	na6 := header.NDPNeighborAdvert(icmp.MessageBody())
	if icmp.Type() != header.ICMPv6NeighborAdvert || sent != want || !na6.OverrideFlag() || na6.SolicitedFlag() || ip.HopLimit() != header.NDPHopLimit {
		t.Errorf("UnsolicitedNA: type %d, checksum %#x (want %#x), override %v, solicited %v, hop limit %d",
			icmp.Type(), sent, want, na6.OverrideFlag(), na6.SolicitedFlag(), ip.HopLimit())
	}
	if frames.IsNeighborSolicitation(na, frames.PeerV6) {
		t.Error("an advertisement taken for a solicitation")
	}
}
