package mediaport_test

import (
	"fmt"
	"testing"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/udpfast"
)

// Printed, a port's and a manager's Stats name every count, and the send
// fallbacks, the filter's pass and drop reasons and the ARP entry states
// by name.
func TestStatsPrintReasonsByName(t *testing.T) {
	var send udpfast.Stats
	send.Fast, send.LinkWrites = 4, 4
	send.Fallbacks[udpfast.ReasonNoEntry] = 1
	port := mediaport.PortStats{
		Port:     20000,
		Receive:  fastfilter.Counters{FastDelivered: 5, Dropped: fastfilter.DroppedCounters{BufferFull: 2}},
		Buffered: 5, Read: 3,
		Send: send,
	}
	manager := mediaport.Stats{
		OpenPorts:         2,
		Receive:           fastfilter.Counters{FastDelivered: 5, ToNetstack: 4, Passed: fastfilter.PassedCounters{NotIP: 4}},
		Send:              send,
		NetstackRxPackets: 4,
		ARP:               policyarp.Stats{Resolutions: 1, Resolved: 1},
		ARPEntries:        map[policyarp.State]int{policyarp.Valid: 1},
	}
	for _, tc := range []struct {
		got, want string
	}{
		{fmt.Sprint(port), "port 20000: receive fast 5, via netstack 0, passed to netstack 0 (none), dropped 2 (buffer-full 2); buffered 5, read 3; " +
			"send fast 4 in 4 link writes (0 trains), through netstack 1 (no-entry 1), refused by netstack 0"},
		{fmt.Sprint(manager), "open ports 2; receive fast 5, via netstack 0, passed to netstack 4 (not-ip 4), dropped 0 (none); " +
			"send fast 4 in 4 link writes (0 trains), through netstack 1 (no-entry 1), refused by netstack 0; netstack received 4 frames; " +
			"arp {Resolutions:1 Resolved:1 Refreshes:0 RefreshRounds:0 MACChanges:0 Aged:0 Invalidations:0 NeighborFlushes:0 Failures:0 Evictions:0 " +
			"AnnouncedSame:0 AnnounceDeferred:0 PathMTUUpdates:0 PathMTUIgnored:0 PathMTUExpired:0 MACChangesBy:[0 0 0 0 0]}, entries map[valid:1]"},
	} {
		if tc.got != tc.want {
			t.Errorf("printed\n%s\nwant\n%s", tc.got, tc.want)
		}
	}
}
