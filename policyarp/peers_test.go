package policyarp_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/policyarp"
)

func newTableWith(t *testing.T, lan *simlan.LAN, opts policyarp.Options) *policyarp.Table {
	t.Helper()
	a := lan.Hosts[0].Stack
	opts.Stack, opts.NIC, opts.BasePort, opts.Ports = a.Netstack(), a.NICID(0), base, nports
	tab, err := policyarp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tab.Close)
	return tab
}

// One port holds many destinations, each with its own entry; beyond
// MaxDestinations the least recently used goes (counted), the ones in use
// stay.
func TestDestinationSet(t *testing.T) {
	lan := newLAN(t)
	tab := newTableWith(t, lan, policyarp.Options{MaxDestinations: 6})
	dsts := make([]tcpip.Address, 8)
	for i := range dsts {
		dsts[i] = addr(frames.V4(byte(10 + i)))
		if err := tab.SetStatic(dsts[i], frames.MAC(byte(10+i))); err != nil {
			t.Fatal(err)
		}
	}
	slot := tab.Slot(rtp)
	for _, d := range dsts[:6] {
		if e := mustResolve(t, tab, rtp, a4, d); e.State != policyarp.Static {
			t.Fatalf("%s: %v", d, e)
		}
	}
	seen := map[int]bool{}
	for i, d := range dsts[:6] {
		e := slot.Peek(d)
		if e == nil || e.Dst != d || e.MAC != frames.MAC(byte(10+i)) || seen[e.Index] || e.Index >= tab.MaxDestinations() {
			t.Fatalf("entry for %s: %v (indexes so far %v)", d, e, seen)
		}
		seen[e.Index] = true
	}
	if !slot.Full() || tab.Stats().Evictions != 0 {
		t.Fatalf("full %v, stats %+v", slot.Full(), tab.Stats())
	}
	// Use all but the first two across a refresh round: they are the
	// least recently used, and go first.
	for _, d := range dsts[2:6] {
		slot.Load(d)
	}
	lan.Run(1100 * time.Millisecond)
	mustResolve(t, tab, rtp, a4, dsts[6])
	mustResolve(t, tab, rtp, a4, dsts[7])
	if st := tab.Stats(); st.Evictions != 2 {
		t.Fatalf("stats %+v: want 2 evictions", st)
	}
	for i, d := range dsts {
		if got := slot.Peek(d) != nil; got != (i >= 2) {
			t.Errorf("destination %d (%s) present %v", i, d, got)
		}
	}
	if _, ok := tab.Lookup(rtp, dsts[7]); !ok {
		t.Fatal("newest destination not usable")
	}
}

// A flood of announcements with changing MACs invalidates each destination
// at most once per AnnounceInterval; the last announcement held back is
// looked at when the interval ends.
func TestAnnouncementFloodIsRateLimited(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	forged := []tcpip.LinkAddress{frames.MAC(0x51), frames.MAC(0x52)}
	const flood = 3 * time.Second
	for i := 0; time.Duration(i)*2*time.Millisecond < flood; i++ {
		tab.HandleNeighborUpdate(b4, forged[i%2])
		if e := tab.Slot(rtp).Peek(b4); e.State != policyarp.Valid {
			mustResolve(t, tab, rtp, a4, b4) // as the next datagram would
		}
		lan.Run(2 * time.Millisecond)
	}
	st := tab.Stats()
	t.Logf("3 s of changing announcements every 2 ms: %+v", st)
	if st.Invalidations < 3 || st.Invalidations > 4 {
		t.Fatalf("%d invalidations in %v, want one per %v", st.Invalidations, flood, policyarp.DefaultAnnounceInterval)
	}
	if st.AnnounceDeferred == 0 {
		t.Fatal("no announcement was deferred")
	}
	lan.Run(2 * time.Second) // the last announcement held back is acted upon
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	if mac, ok := tab.Lookup(rtp, b4); !ok || mac != macB {
		t.Fatalf("after the flood: %q %v, want B's own MAC %s (announcements never install a MAC)", mac, ok, macB)
	}
}

// A unicast ARP request (IPv6: Neighbor Solicitation) with a forged sender
// moves netstack's neighbour entry (as Linux does); the fast path follows
// within one refresh, counts the change as "refresh" and logs the old and
// the new MAC, once.
func TestForgedSolicitationFollowedWithinARefresh(t *testing.T) {
	forged := frames.MAC(0x66)
	for _, tc := range []struct {
		name       string
		local, dst tcpip.Address
		frame      []byte
	}{
		{"arp", a4, b4, frames.ARP{Op: header.ARPRequest, DstMAC: macA, SenderMAC: forged, SenderIP: frames.V4(hostB), TargetIP: frames.V4(hostA)}.Build()},
		{"ns", a6, b6, frames.NS{Src: frames.V6(hostB), Target: frames.V6(hostA), SrcMAC: forged, DstMAC: macA}.Build()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lan := newLAN(t)
			lan.Run(time.Second) // IPv6 link-local set-up traffic
			var logs bytes.Buffer
			tab := newTableWith(t, lan, policyarp.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			mustResolve(t, tab, rtp, tc.local, tc.dst)
			lan.Run(10 * time.Millisecond)
			if mac, ok := tab.Lookup(rtp, tc.dst); !ok || mac != macB {
				t.Fatalf("before: %q %v", mac, ok)
			}
			if _, err := lan.Hosts[2].Link.WriteFrames([][]byte{tc.frame}); err != nil { // from R's port: anyone on the LAN
				t.Fatal(err)
			}
			lan.Run(time.Millisecond)
			slot := tab.Slot(rtp)
			var moved time.Duration
			for i := 0; i < 30 && moved == 0; i++ {
				if e := slot.Load(tc.dst); e.Usable() && e.MAC == forged {
					moved = time.Duration(i) * 50 * time.Millisecond
				}
				lan.Run(50 * time.Millisecond)
			}
			if moved == 0 || moved > tab.Refresh() {
				t.Fatalf("the fast path did not follow netstack's entry within a refresh (%v): entry %v", tab.Refresh(), slot.Peek(tc.dst))
			}
			st := tab.Stats()
			if st.MACChangesBy[policyarp.RefreshChange] != 1 || st.MACChanges != 1 {
				t.Fatalf("stats %+v: want one MAC change, by refresh", st)
			}
			line := logs.String()
			for _, want := range []string{"level=INFO", "neighbour MAC changed", "old=" + macB.String(), "new=" + forged.String(), "reason=refresh", "next_hop=" + tc.dst.String()} {
				if !strings.Contains(line, want) {
					t.Errorf("log %q lacks %q", line, want)
				}
			}
			if n := strings.Count(line, "\n"); n != 1 {
				t.Errorf("%d log lines, want 1", n)
			}
		})
	}
}

// An entry that aged with a peer's old MAC does not make repeated
// announcements of its new MAC look like changes: the valid entries stay.
func TestAgedEntryDoesNotTurnRepeatsIntoChanges(t *testing.T) {
	lan := newLAN(t)
	tab := newTable(t, lan)
	mustResolve(t, tab, rtp, a4, b4)
	mustResolve(t, tab, rtp+1, a4, b4)
	lan.Run(10 * time.Millisecond)
	for i := 0; i < 12; i++ { // rtp in use, rtp+1 idle: it ages with macB
		tab.Slot(rtp).Load(b4)
		lan.Run(time.Second)
	}
	if got := stateFor(tab, rtp+1, b4); got != policyarp.Aged {
		t.Fatalf("idle entry: %v, want aged", got)
	}
	lan.Hosts[1].Link.SetLinkAddress(macB2)
	tab.HandleNeighborUpdate(b4, macB2)
	mustResolve(t, tab, rtp, a4, b4)
	lan.Run(10 * time.Millisecond)
	if mac, ok := tab.Lookup(rtp, b4); !ok || mac != macB2 {
		t.Fatalf("after the move: %q %v", mac, ok)
	}
	before := tab.Stats()
	for i := 0; i < 5; i++ {
		lan.Run(1500 * time.Millisecond)
		tab.HandleNeighborUpdate(b4, macB2)
		if got := state(tab, rtp); got != policyarp.Valid {
			t.Fatalf("repeat %d of the new MAC: %v", i, got)
		}
	}
	if st := tab.Stats(); st.Invalidations != before.Invalidations || st.AnnouncedSame != before.AnnouncedSame+5 {
		t.Fatalf("stats %+v (before %+v): want 5 announcements of the same MAC, no invalidation", st, before)
	}
}
