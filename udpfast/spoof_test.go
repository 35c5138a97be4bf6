package udpfast_test

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/udpfast"
)

// garpFlood sends n datagrams to the peer, one every 20 ms (an RTP stream),
// while the peer announces itself every 2 ms with a gratuitous ARP (or an
// unsolicited NA) carrying mac, and returns the sender's counters. With
// delivered, it checks that the peer received every datagram.
func garpFlood(t *testing.T, fam family, n int, delivered bool, mac func(i int) []byte) udpfast.Stats {
	f := newFixture(t, fam)
	f.send(1, f.peer(), 20*time.Millisecond)
	b := f.lan.Hosts[1]
	for i := 0; i < n; i++ {
		p := frames.Seq(make([]byte, 172), f.seq)
		f.seq++
		if err := f.snd.Send(p, f.peer()); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 10; j++ {
			if _, err := b.Link.WriteFrames([][]byte{mac(10*i + j)}); err != nil {
				t.Fatal(err)
			}
			f.lan.Run(2 * time.Millisecond)
		}
		f.rx.poll()
	}
	if delivered {
		f.expectReceived(seqRange(0, uint64(n)+1))
	}
	return f.snd.Stats()
}

// A peer announcing the MAC it already has, every 2 ms, costs the stream
// nothing: every datagram after the first goes fast (issue 12: 239 of 288
// went through netstack before).
func TestRepeatedAnnouncementOfKnownMAC(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			st := garpFlood(t, fam, 288, true, func(int) []byte {
				if fam.name == "v6" {
					return frames.UnsolicitedNA(fam.b, macB)
				}
				return frames.GratuitousARP(header.ARPRequest, fam.b, macB)
			})
			t.Logf("%s: GARP/NA with the known MAC every 2 ms: %v", fam.name, st)
			if st.Fast != 288 || st.FallbackTotal() != 1 {
				t.Fatalf("%v; want 288 fast, 1 fallback (the first datagram)", st)
			}
		})
	}
}

// A flood of announcements with changing (forged) MACs, every 2 ms, costs
// the stream at most one fallback per policyarp.DefaultAnnounceInterval
// (plus the first datagram). Over IPv4 every datagram still reaches the
// peer at its real MAC: netstack ignores gratuitous ARP and resolves
// afresh. Over IPv6, netstack, like Linux, lets an unsolicited NA with the
// Override flag move its neighbour entry (RFC 4861 7.2.5), and the fast
// path follows netstack: without SEND, NDP spoofing is the LAN's problem,
// not one the fast path can solve; what it bounds is its own cost.
func TestChangingAnnouncementFlood(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			forged := []tcpip.LinkAddress{frames.MAC(0x51), frames.MAC(0x52)}
			st := garpFlood(t, fam, 288, fam.name == "v4", func(i int) []byte {
				if fam.name == "v6" {
					return frames.UnsolicitedNA(fam.b, forged[i%2])
				}
				return frames.GratuitousARP(header.ARPRequest, fam.b, forged[i%2])
			})
			t.Logf("%s: GARP/NA with changing MACs every 2 ms: %v", fam.name, st)
			// 288 datagrams 20 ms apart: 5.76 s, so at most 6 invalidations.
			if st.Fast+st.FallbackTotal() != 289 || st.FallbackTotal() > 1+6+1 {
				t.Fatalf("%v; want at most %d fallbacks", st, 1+6+1)
			}
		})
	}
}
