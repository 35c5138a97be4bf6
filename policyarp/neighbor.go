package policyarp

import (
	"fmt"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// MACChangeReason is what revealed that a destination's next hop has a new
// MAC (Stats.MACChangesBy).
type MACChangeReason uint8

const (
	// ResolveChange: a new resolution (after aging or a failure) found
	// another MAC.
	ResolveChange MACChangeReason = iota
	// RefreshChange: the periodic re-validation found that netstack holds
	// another MAC (it learnt one from a solicited reply, or from an ARP
	// request or Neighbor Solicitation naming the next hop as sender).
	RefreshChange
	// GratuitousARPChange: an ARP announcement with another MAC
	// invalidated the entry and the resolution that followed found a new
	// MAC.
	GratuitousARPChange
	// UnsolicitedNAChange: the same for an unsolicited Neighbor
	// Advertisement.
	UnsolicitedNAChange
	// StaticChange: SetStatic fixed another MAC.
	StaticChange

	// NumMACChangeReasons is the number of reasons.
	NumMACChangeReasons = int(iota)
)

var macChangeNames = [NumMACChangeReasons]string{"resolve", "refresh", "gratuitous-arp", "unsolicited-na", "static"}

func (r MACChangeReason) String() string {
	if int(r) < NumMACChangeReasons {
		return macChangeNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// macChanged counts (and logs) that e's next hop moved from old to mac.
// Entries sharing a next hop change together; the log says it once per
// change of the next hop, not once per entry.
func (t *Table) macChanged(e *Entry, old, mac tcpip.LinkAddress, why MACChangeReason) {
	t.c.macChanges[why].Add(1)
	if t.log == nil {
		return
	}
	t.logMu.Lock()
	pair := [2]tcpip.LinkAddress{old, mac}
	if t.lastLogs[e.NextHop] == pair {
		t.logMu.Unlock()
		return
	}
	if len(t.lastLogs) >= 4096 {
		clear(t.lastLogs)
	}
	t.lastLogs[e.NextHop] = pair
	t.logMu.Unlock()
	t.log.Info("policyarp: neighbour MAC changed", "next_hop", e.NextHop.String(), "old", old.String(), "new", mac.String(),
		"reason", why.String(), "port", e.Port, "dst", e.Dst.String())
}

// HandleNeighborUpdate is the hook fastfilter calls for a gratuitous ARP or
// an unsolicited Neighbor Advertisement announcing that ip is at mac
// (fastfilter.Filter.SubscribeNeighborUpdates). It never installs mac (the
// frame is unauthenticated); what it does depends on what is known:
//
//   - an announcement of the MAC the entries using ip hold (and netstack
//     holds) changes nothing: hosts repeat announcements (keepalived, VRRP,
//     arping -U loops), and each used to cost a fallback (Stats.AnnouncedSame);
//   - an announcement of another MAC (or none: mac empty means "unknown")
//     invalidates the entries whose next hop is ip, so that their next
//     datagram goes through netstack, and, when netstack's neighbour cache
//     holds another MAC for ip (gVisor ignores gratuitous ARP requests and
//     will not let a gratuitous reply override a cached MAC), removes
//     netstack's dynamic entry so that netstack resolves ip afresh and
//     learns the MAC from the solicited reply;
//   - at most once per Options.AnnounceInterval per destination: a flood
//     of changing announcements costs each destination at most one
//     fallback per interval. An announcement held back is looked at again
//     when the interval ends (Stats.AnnounceDeferred), so the last word
//     of a real move is never lost.
//
// Updates for addresses no entry uses change nothing, in the table or in
// netstack, and static neighbours never move. It is safe to call from a
// link's receive goroutine: it takes only short locks and never blocks on
// I/O. An update for an address no entry uses costs a map lookup, as does a
// repeat of the known MAC within 100 ms of the last one, and one that comes
// within AnnounceInterval of an update of the same address that found a
// change (held back for the interval's end); any other scans the table's
// entries once or twice, so a flood costs at most a few scans per address
// and second.
func (t *Table) HandleNeighborUpdate(ip tcpip.Address, mac tcpip.LinkAddress) {
	proto, ok := protocolOf(ip, ip)
	if !ok || !t.usesNextHop(ip) {
		return // most announcements on a LAN: no scan of the table for them
	}
	if mac != "" && t.repeated(ip, mac) {
		t.c.announcedSame.Add(1)
		return
	}
	if t.throttled(ip, mac) {
		t.c.announceDeferred.Add(1)
		return
	}
	inUse, differs := t.knownMAC(ip, mac)
	if !inUse {
		return
	}
	t.staticMu.Lock()
	_, static := t.static[ip]
	t.staticMu.Unlock()
	if static {
		return // fixed by configuration; announcements do not move it
	}
	// netstack's entry is wrong only when it has a MAC (not while it
	// resolves) and another one.
	var flush bool
	if nbrs, err := t.ns.Neighbors(t.nic, proto); err == nil {
		for _, n := range nbrs {
			if n.Addr == ip {
				flush = n.State != tcpipstack.Static && n.LinkAddr != "" && (mac == "" || n.LinkAddr != mac)
				break
			}
		}
	}
	if !differs && !flush {
		t.c.announcedSame.Add(1)
		t.rememberSame(ip, mac)
		return
	}
	t.flushMu.Lock()
	delete(t.same, ip) // the MAC is in question: the next repeat is examined
	t.flushMu.Unlock()
	why := GratuitousARPChange
	if proto == header.IPv6ProtocolNumber {
		why = UnsolicitedNAChange
	}
	// The flush goes first, so that a sender re-resolving right after the
	// invalidation cannot pick up the old MAC again; it is rate-limited
	// like the invalidations, or a flood would keep netstack resolving.
	if flush && t.flushAllowed(ip) && t.ns.RemoveNeighbor(t.nic, proto, ip) == nil {
		t.c.flushes.Add(1)
	}
	t.invalidate(ip, mac, why, true)
	t.openWindow(ip)
}

// announceWindow is the rate limit of one next hop's announcements that
// found a change: within AnnounceInterval of one, the next are not
// examined (which scans the table) but held back, the last of them looked
// at when the interval ends.
type announceWindow struct {
	since tcpip.MonotonicTime
	held  tcpip.LinkAddress // the last held back; unknownMAC for an empty one
	armed bool
}

// openWindow starts ip's window after an announcement that found a change.
func (t *Table) openWindow(ip tcpip.Address) {
	now := t.clock.NowMonotonic()
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	w := t.windows[ip]
	if w == nil {
		if len(t.windows) >= 4096 {
			clear(t.windows)
		}
		w = &announceWindow{}
		t.windows[ip] = w
	}
	w.since = now
}

// throttled reports whether an announcement of mac for ip falls in ip's
// window, and then holds it back for the window's end.
func (t *Table) throttled(ip tcpip.Address, mac tcpip.LinkAddress) bool {
	now := t.clock.NowMonotonic()
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	w := t.windows[ip]
	if w == nil || now.Sub(w.since) >= t.announce {
		return false
	}
	if w.held = mac; mac == "" {
		w.held = unknownMAC
	}
	if !w.armed {
		w.armed = true
		t.clock.AfterFunc(t.announce-now.Sub(w.since), func() { t.closeWindow(ip, w) })
	}
	return true
}

// closeWindow looks at the last announcement held back in w.
func (t *Table) closeWindow(ip tcpip.Address, w *announceWindow) {
	t.flushMu.Lock()
	mac := w.held
	w.held, w.armed = "", false
	t.flushMu.Unlock()
	if mac == "" || t.closed.Load() {
		return
	}
	if mac == unknownMAC {
		mac = ""
	}
	t.HandleNeighborUpdate(ip, mac)
}

// flushAllowed reports whether netstack's neighbour ip may be flushed now:
// at most once per AnnounceInterval.
func (t *Table) flushAllowed(ip tcpip.Address) bool {
	now := t.clock.NowMonotonic()
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	if last, ok := t.flushed[ip]; ok && now.Sub(last) < t.announce {
		return false
	}
	if len(t.flushed) >= 4096 {
		clear(t.flushed)
	}
	t.flushed[ip] = now
	return true
}

// repeatWindow is how long an announcement found to repeat the known MAC
// lets the same announcement through without a scan of the table: a host
// announcing itself every few milliseconds costs a map lookup each. A MAC
// that changed meanwhile (a refresh, a resolution) is noticed by the first
// repeat after the window.
const repeatWindow = 100 * time.Millisecond

// repeated reports whether ip announced mac, found the known MAC, less
// than repeatWindow ago.
func (t *Table) repeated(ip tcpip.Address, mac tcpip.LinkAddress) bool {
	now := t.clock.NowMonotonic()
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	r, ok := t.same[ip]
	return ok && r.mac == mac && now.Sub(r.at) < repeatWindow
}

func (t *Table) rememberSame(ip tcpip.Address, mac tcpip.LinkAddress) {
	now := t.clock.NowMonotonic()
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	if len(t.same) >= 4096 {
		clear(t.same)
	}
	t.same[ip] = sameAnnouncement{mac, now}
}

type sameAnnouncement struct {
	mac tcpip.LinkAddress
	at  tcpip.MonotonicTime
}

// countNextHops moves one entry's count from old's next hop to new's (either
// may be nil).
func (t *Table) countNextHops(old, new *Entry) {
	t.hopsMu.Lock()
	defer t.hopsMu.Unlock()
	if old != nil && old.NextHop.BitLen() != 0 {
		if t.hops[old.NextHop]--; t.hops[old.NextHop] <= 0 {
			delete(t.hops, old.NextHop)
		}
	}
	if new != nil && new.NextHop.BitLen() != 0 {
		t.hops[new.NextHop]++
	}
}

// usesNextHop reports whether an entry uses ip as its next hop, without a
// scan.
func (t *Table) usesNextHop(ip tcpip.Address) bool {
	t.hopsMu.Lock()
	defer t.hopsMu.Unlock()
	return t.hops[ip] > 0
}

// knownMAC reports whether an entry uses ip as its next hop and whether a
// Valid one holds a MAC other than mac (any, when mac is empty). Entries
// that aged or were invalidated keep their old MAC, which must not make a
// repeated announcement of the new one look like a change.
func (t *Table) knownMAC(ip tcpip.Address, mac tcpip.LinkAddress) (inUse, differs bool) {
	for i := range t.slots {
		t.slots[i].each(func(_ *Dest, e *Entry) {
			if e.NextHop == ip {
				inUse = true
				differs = differs || (e.State == Valid && (mac == "" || e.MAC != mac))
			}
		})
	}
	return inUse, differs
}

// retryAnnouncement looks again at the announcement the rate limit held
// back for d, now that its interval has ended.
func (t *Table) retryAnnouncement(s *Slot, d *Dest, ip tcpip.Address) {
	s.mu.Lock()
	var mac tcpip.LinkAddress
	if e := d.entry.Load(); e != nil && e.deferred != "" {
		mac = e.deferred
		n := *e
		n.deferred = ""
		t.publishLocked(s, d, &n)
	}
	s.mu.Unlock()
	if mac == "" || t.closed.Load() {
		return // nothing held back (or the entry went)
	}
	if mac == unknownMAC {
		mac = ""
	}
	t.HandleNeighborUpdate(ip, mac)
}

// unknownMAC marks a deferred announcement of no MAC (Entry.deferred).
const unknownMAC = tcpip.LinkAddress("?")
