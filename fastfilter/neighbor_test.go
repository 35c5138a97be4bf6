package fastfilter_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/stack"
)

// arp is an ARP packet from the peer's address at mac about target.
func arp(op header.ARPOp, dstMAC, mac tcpip.LinkAddress, target netip.Addr) []byte {
	return frames.ARP{Op: op, DstMAC: dstMAC, SenderMAC: mac, SenderIP: frames.PeerV4, TargetIP: target}.Build()
}

// na is a Neighbor Advertisement of the peer's address at mac.
func na(mac tcpip.LinkAddress, solicited, override bool, hopLimit uint8, withTLLA bool) []byte {
	return frames.NA{Target: frames.PeerV6, MAC: mac, Solicited: solicited, Override: override, HopLimit: hopLimit, TLLA: withTLLA}.Build()
}

type neighborUpdate struct {
	IP  string
	MAC tcpip.LinkAddress
}

func TestNeighborUpdates(t *testing.T) {
	newMAC := frames.MAC(0x77)
	badChecksum := frames.UnsolicitedNA(frames.PeerV6, newMAC)
	badChecksum[len(badChecksum)-1] ^= 1
	for _, tc := range []struct {
		name  string
		frame []byte
		want  []neighborUpdate
	}{
		{"gratuitous request", frames.GratuitousARP(header.ARPRequest, frames.PeerV4, newMAC), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"gratuitous reply", frames.GratuitousARP(header.ARPReply, frames.PeerV4, newMAC), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"broadcast reply", arp(header.ARPReply, header.EthernetBroadcastAddress, newMAC, frames.StackV4), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"unicast reply about another target", arp(header.ARPReply, frames.StackMAC, newMAC, frames.V4(otherHost)), []neighborUpdate{{"198.51.100.1", newMAC}}},
		{"answer to our request", arp(header.ARPReply, frames.StackMAC, newMAC, frames.StackV4), nil},
		{"ordinary request", arp(header.ARPRequest, header.EthernetBroadcastAddress, newMAC, frames.StackV4), nil},
		{"address probe", frames.GratuitousARP(header.ARPRequest, netip.IPv4Unspecified(), newMAC), nil},
		{"unsolicited NA with TLLA", frames.UnsolicitedNA(frames.PeerV6, newMAC), []neighborUpdate{{"2001:db8::1", newMAC}}},
		{"unsolicited NA without TLLA", na(newMAC, false, true, header.NDPHopLimit, false), []neighborUpdate{{"2001:db8::1", newMAC}}},
		{"solicited NA", na(newMAC, true, true, header.NDPHopLimit, true), nil},
		{"NA without override", na(newMAC, false, false, header.NDPHopLimit, true), nil},
		{"NA hop limit 64", na(newMAC, false, true, 64, true), nil},
		{"NA bad checksum", badChecksum, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, fixtureOptions{})
			var got []neighborUpdate
			fx.f.SubscribeNeighborUpdates(func(ip tcpip.Address, mac tcpip.LinkAddress) {
				got = append(got, neighborUpdate{stack.AddrTo(ip).String(), mac})
			})
			if v := fx.f.Hook(tc.frame); v != link.Pass {
				t.Errorf("verdict %v, want pass: netstack must see the frame too", v)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("updates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNeighborUpdateReachesNetstack checks that netstack still learns from a
// gratuitous ARP the hook reported: the hook passes the frame on.
func TestNeighborUpdateReachesNetstack(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	var updates int
	fx.f.SubscribeNeighborUpdates(func(tcpip.Address, tcpip.LinkAddress) { updates++ })
	fx.ep.DeliverFrame(frames.GratuitousARP(header.ARPRequest, frames.PeerV4, frames.PeerMAC))
	if updates != 1 {
		t.Fatalf("%d updates, want 1", updates)
	}
	if got := fx.ep.Stats.RxToNetstack.Load(); got != 1 {
		t.Errorf("link RxToNetstack = %d, want 1", got)
	}
	if got := fx.st.Netstack().Stats().ARP.PacketsReceived.Value(); got != 1 {
		t.Errorf("netstack ARP PacketsReceived = %d, want 1", got)
	}
}
