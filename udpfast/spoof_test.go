package udpfast_test

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/udpfast"
)

// garpFlood sends n datagrams to the peer, one every 20 ms (an RTP stream),
// while the peer announces itself every 2 ms with a gratuitous ARP (or an
// unsolicited NA) carrying mac, and returns the sender's counters.
func garpFlood(t *testing.T, fam family, n int, mac func(i int) []byte) udpfast.Stats {
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
	f.expectReceived(seqRange(0, uint64(n)+1))
	return f.snd.Stats()
}

// A peer announcing the MAC it already has, every 2 ms, costs the stream
// nothing: every datagram after the first goes fast (issue 12: 239 of 288
// went through netstack before).
func TestRepeatedAnnouncementOfKnownMAC(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			st := garpFlood(t, fam, 288, func(int) []byte {
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
