package udpfast_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
)

// A router's "fragmentation needed" / "packet too big" about a fast
// destination lowers that destination's path MTU: larger datagrams go
// through netstack (too-big) instead of being fast-sent to a router that
// drops them, smaller ones and other destinations stay fast, and after
// policyarp.DefaultPathMTUExpiry the link MTU is tried again.
func TestPathMTUFromICMP(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			f := newFixture(t, fam)
			far := netip.AddrPortFrom(fam.remote, sink)
			big := fam.maxFastPayload // fits the link MTU
			sendSized := func(n int, dst netip.AddrPort) {
				t.Helper()
				if err := f.snd.Send(frames.Seq(make([]byte, n), f.seq), dst); err != nil {
					t.Fatal(err)
				}
				f.seq++
				f.lan.Run(10 * time.Millisecond)
			}
			sendSized(big, far) // resolves the gateway
			sendSized(big, far) // fast
			sendSized(100, f.peer())
			sendSized(100, f.peer())
			f.expect(2, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 2})
			var quoted []byte
			r := f.lan.Hosts[2]
			for _, fr := range r.Frames() {
				if u, ok := frames.ParseUDP(fr); ok && u.Dst == far {
					quoted = fr[14:]
				}
			}
			if quoted == nil {
				t.Fatal("the gateway saw no datagram to quote")
			}
			report := func(mtu uint32, q []byte) {
				t.Helper()
				if len(q) > 548 {
					q = q[:548]
				}
				msg := frames.TooBig{Router: fam.gateway, Dst: fam.a, SrcMAC: macR, DstMAC: macA, Quoted: q, MTU: mtu}
				if _, err := r.Link.WriteFrames([][]byte{msg.Build()}); err != nil {
					t.Fatal(err)
				}
				f.lan.Run(time.Millisecond)
			}
			minMTU := uint32(policyarp.MinPathMTUv4)
			if fam.name == "v6" {
				minMTU = policyarp.MinPathMTUv6
			}
			report(minMTU-1, quoted) // below the protocol's minimum: ignored
			farT := stack.AddrFrom(fam.remote)
			if e := f.table.Slot(rtp).Peek(farT); e.PathMTU != 0 {
				t.Fatalf("an MTU below %d was taken: %v", minMTU, e)
			}
			report(1400, quoted)
			if e := f.table.Slot(rtp).Peek(farT); e.PathMTU != 1400 || !e.Usable() {
				t.Fatalf("after the report: %v, want path MTU 1400", e)
			}
			if st := f.table.Stats(); st.PathMTUUpdates != 1 || st.PathMTUIgnored != 1 {
				t.Fatalf("table %+v", st)
			}
			ipLen := 28
			if fam.name == "v6" {
				ipLen = 48
			}
			sendSized(big, far)        // too big for the path: netstack
			sendSized(1400-ipLen, far) // fits: fast
			sendSized(big, f.peer())   // another destination: the link MTU holds
			f.expect(4, map[udpfast.Reason]uint64{udpfast.ReasonNoEntry: 2, udpfast.ReasonTooBig: 1})

			f.lan.Run(policyarp.DefaultPathMTUExpiry / 2)
			sendSized(100, far) // keeps the entry in use
			f.lan.Run(policyarp.DefaultPathMTUExpiry/2 + 2*time.Second)
			if e := f.table.Slot(rtp).Peek(farT); e.PathMTU != 0 {
				t.Fatalf("path MTU did not expire: %v", e)
			}
			if st := f.table.Stats(); st.PathMTUExpired != 1 {
				t.Fatalf("table %+v", st)
			}
			sendSized(big, far)
			sendSized(big, far)
			st := f.snd.Stats()
			if st.Fallback(udpfast.ReasonTooBig) != 1 || st.Fast < 6 {
				t.Fatalf("after expiry: %v; want large datagrams fast again", st)
			}
		})
	}
}
