// Package metrics exposes mediastack's fast-path counters to Prometheus:
// a prometheus.Collector over a mediaport.Manager (and, optionally, the
// relay.Service running on it), and an http.Handler that serves them in
// the text exposition format with the Go runtime's and the process's own
// metrics, as `mediastack serve --metrics ADDR` does.
//
// The collector reads the counters when scraped (Manager.Stats and
// Service.Stats): nothing is counted twice and nothing is added to the
// packet path.
//
// Metrics (all prefixed mediastack_):
//
//	fast_rx_packets_total                     datagrams delivered to media ports straight from the link
//	netstack_lane_rx_packets_total            datagrams for media ports that came through netstack (fragments, IP options)
//	fast_rx_passed_packets_total{reason}      frames the fast filter passed on to netstack
//	fast_rx_dropped_packets_total{reason}     frames and datagrams the fast path dropped
//	netstack_rx_packets_total                 frames netstack received on the NIC
//	fast_tx_packets_total                     datagrams sent as raw frames
//	fast_tx_fallback_packets_total{reason}    datagrams sent through netstack instead
//	fast_tx_fallback_errors_total             datagrams netstack refused too
//	media_ports_open                          media ports open now
//	policyarp_entries{state}                  policy ARP entries by state
//	policyarp_resolutions_total, policyarp_aged_total, policyarp_invalidations_total,
//	policyarp_neighbor_flushes_total, policyarp_failures_total
//	policyarp_mac_changes_total{reason}       neighbour MAC changes the fast path followed, by what revealed them
//	policyarp_evictions_total                 destinations evicted from a port's full set
//	policyarp_announcements_ignored_total{reason}  announcements that invalidated nothing (same-mac, rate-limited)
//	policyarp_path_mtu_reports_total{result}  ICMP path MTU reports (lowered, ignored)
//	policyarp_path_mtu_expired_total          lowered path MTUs that expired
//	relays, relay_packets_total{direction}, relay_bytes_total{direction},
//	relay_dropped_packets_total{reason}, reflector_ports, reflected_packets_total
//	link_dropped_packets_total{link,reason}   frames lost at the link or below it (link.DropReporter):
//	                                          the kernel's queue toward a TAP or AF_PACKET socket (queue-full),
//	                                          frames the link dropped itself (other-host, other-vlan, ...)
//	relay_rtcp_packets_total{direction}       the RTCP share of relay_packets_total
//	relays_ended_total{reason}                relays that ended: deleted, timeout, silent_timeout, final_timeout, closed
//	relay_stream_jitter_seconds               histogram: each relay side's RTP jitter (RFC 3550 A.8) when the relay ends
//	relay_stream_loss_ratio                   histogram: each relay side's RTP loss (lost/expected, A.3) when the relay ends
//
// Per-call figures have no label per call (the label cardinality stays
// bounded): they are histograms over the calls that ended, and each call's
// own figures are in the relay API. Label values are spelled as the JSON
// API spells them (no_peer, foreign_source, silent_timeout).
//
//	build_info{version,commit,goversion,gvisor}  always 1 (Handler; internal/buildinfo)
package metrics

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/buildinfo"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/relay"
	"github.com/mediastack/mediastack/udpfast"
)

// Collector is a prometheus.Collector over a Manager and its relay Service.
type Collector struct {
	m *mediaport.Manager
	s *relay.Service // may be nil

	fastRx, laneRx, passed, dropped, netstackRx    *prometheus.Desc
	fastTx, fallback, fallbackErrors, portsOpen    *prometheus.Desc
	fastTxTrains                                   *prometheus.Desc
	arpEntries, arpResolutions, arpAged            *prometheus.Desc
	arpInvalidations, arpFlushes, arpFailures      *prometheus.Desc
	arpMACChanges, arpEvictions, arpAnnouncements  *prometheus.Desc
	arpPMTUReports, arpPMTUExpired                 *prometheus.Desc
	relays, relayPackets, relayBytes, relayDropped *prometheus.Desc
	reflectorPorts, reflected                      *prometheus.Desc
	linkDropped                                    *prometheus.Desc
	relayRTCPPackets, relaysEnded                  *prometheus.Desc
	streamJitter, streamLoss                       *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over m and, when s is not nil, the relay
// service on it.
func NewCollector(m *mediaport.Manager, s *relay.Service) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mediastack_"+name, help, labels, nil)
	}
	return &Collector{
		m:                m,
		s:                s,
		fastRx:           d("fast_rx_packets_total", "Datagrams delivered to media ports straight from the link (the fast receive path)."),
		laneRx:           d("netstack_lane_rx_packets_total", "Datagrams for media ports that came through netstack (fragments, IP options) into the same buffers."),
		passed:           d("fast_rx_passed_packets_total", "Frames the fast filter passed on to netstack, by reason.", "reason"),
		dropped:          d("fast_rx_dropped_packets_total", "Frames and datagrams the fast receive path dropped, by reason.", "reason"),
		netstackRx:       d("netstack_rx_packets_total", "Frames netstack received on the NIC (everything the fast filter passed on)."),
		fastTx:           d("fast_tx_packets_total", "Datagrams media ports sent as raw frames (the fast send path)."),
		fastTxTrains:     d("fast_tx_udp_trains_total", "UDP trains media ports wrote for the kernel to cut into datagrams (a link with UDPSegmentation); their datagrams count in fast_tx_packets_total."),
		fallback:         d("fast_tx_fallback_packets_total", "Datagrams media ports sent through netstack instead of the fast path, by reason.", "reason"),
		fallbackErrors:   d("fast_tx_fallback_errors_total", "Datagrams netstack refused on the fallback lane (returned as errors)."),
		portsOpen:        d("media_ports_open", "Media ports open now."),
		arpEntries:       d("policyarp_entries", "Policy ARP table entries, by state.", "state"),
		arpResolutions:   d("policyarp_resolutions_total", "Policy ARP entries made (first use, new destination, after aging or invalidation)."),
		arpAged:          d("policyarp_aged_total", "Policy ARP entries that reached the aging time unconfirmed."),
		arpInvalidations: d("policyarp_invalidations_total", "Policy ARP entries invalidated by gratuitous ARP or unsolicited Neighbor Advertisements."),
		arpFlushes:       d("policyarp_neighbor_flushes_total", "netstack neighbour entries removed because an announcement named another MAC."),
		arpFailures:      d("policyarp_failures_total", "Neighbour resolutions netstack reported as failed."),
		arpMACChanges:    d("policyarp_mac_changes_total", "Policy ARP entries whose next hop's MAC changed, by what revealed it (resolve, refresh, gratuitous-arp, unsolicited-na, static).", "reason"),
		arpEvictions:     d("policyarp_evictions_total", "Destinations evicted from a port's full destination set (the least recently used)."),
		arpAnnouncements: d("policyarp_announcements_ignored_total", "Neighbour announcements about a next hop in use that invalidated nothing: the MAC already known (same-mac), or within the per-destination interval (rate-limited, looked at again when it ends).", "reason"),
		arpPMTUReports:   d("policyarp_path_mtu_reports_total", "ICMP fragmentation-needed / packet-too-big reports about fast destinations: lowered a path MTU, or ignored.", "result"),
		arpPMTUExpired:   d("policyarp_path_mtu_expired_total", "Lowered path MTUs that expired (the link MTU is tried again)."),
		relays:           d("relays", "Relays now."),
		relayPackets:     d("relay_packets_total", "Datagrams relays received from their peers and sent to them.", "direction"),
		relayBytes:       d("relay_bytes_total", "Payload bytes relays received from their peers and sent to them.", "direction"),
		relayDropped:     d("relay_dropped_packets_total", "Datagrams relays dropped, by reason.", "reason"),
		reflectorPorts:   d("reflector_ports", "Ports reflecting now."),
		reflected:        d("reflected_packets_total", "Datagrams the reflector sent back to their source."),
		linkDropped:      d("link_dropped_packets_total", "Frames lost at the link or below it, where netstack and the fast paths never see them (queue-full: the kernel's queue toward the stack overflowed), by link (the NIC's name) and reason.", "link", "reason"),
		relayRTCPPackets: d("relay_rtcp_packets_total", "RTCP datagrams relays received from their peers and sent to them (counted in relay_packets_total too).", "direction"),
		relaysEnded:      d("relays_ended_total", "Relays that ended, by reason (deleted, timeout, silent_timeout, final_timeout, closed).", "reason"),
		streamJitter:     d("relay_stream_jitter_seconds", "Inter-arrival jitter (RFC 3550 A.8) of each relay side's RTP stream, observed when the relay ends (streams of a known clock rate)."),
		streamLoss:       d("relay_stream_loss_ratio", "Packets lost over packets expected (RFC 3550 A.3) of each relay side's RTP stream, observed when the relay ends."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.fastRx, c.laneRx, c.passed, c.dropped, c.netstackRx, c.fastTx, c.fastTxTrains, c.fallback, c.fallbackErrors, c.portsOpen,
		c.arpEntries, c.arpResolutions, c.arpAged, c.arpInvalidations, c.arpFlushes, c.arpFailures,
		c.arpMACChanges, c.arpEvictions, c.arpAnnouncements, c.arpPMTUReports, c.arpPMTUExpired, c.linkDropped,
	} {
		ch <- d
	}
	if c.s != nil {
		for _, d := range []*prometheus.Desc{c.relays, c.relayPackets, c.relayBytes, c.relayDropped, c.reflectorPorts, c.reflected,
			c.relayRTCPPackets, c.relaysEnded, c.streamJitter, c.streamLoss} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	st := c.m.Stats()
	rx := st.Receive
	counter(c.fastRx, rx.FastDelivered)
	counter(c.laneRx, rx.NetstackDelivered)
	for _, r := range []struct {
		reason string
		v      uint64
	}{
		{"not-ip", rx.Passed.NotIP}, {"not-udp", rx.Passed.NotUDP}, {"not-local", rx.Passed.NotLocal},
		{"not-registered", rx.Passed.NotRegistered}, {"fragment", rx.Passed.Fragment},
		{"ip-options", rx.Passed.IPOptions}, {"unusual", rx.Passed.Unusual}, {"malformed", rx.Passed.Malformed},
	} {
		counter(c.passed, r.v, r.reason)
	}
	for _, r := range []struct {
		reason string
		v      uint64
	}{
		{"not-ours", rx.Dropped.NotOurs}, {"truncated", rx.Dropped.Truncated}, {"bad-length", rx.Dropped.BadLength},
		{"bad-checksum", rx.Dropped.BadChecksum}, {"buffer-full", rx.Dropped.BufferFull},
		{"martian", rx.Dropped.Martian}, {"broadcast", rx.Dropped.Broadcast},
	} {
		counter(c.dropped, r.v, r.reason)
	}
	counter(c.netstackRx, st.NetstackRxPackets)
	counter(c.fastTx, st.Send.Fast)
	counter(c.fastTxTrains, st.Send.Trains)
	for r := range udpfast.NumReasons {
		counter(c.fallback, st.Send.Fallbacks[r], udpfast.Reason(r).String())
	}
	counter(c.fallbackErrors, st.Send.FallbackErrors)
	gauge(c.portsOpen, st.OpenPorts)
	for s := policyarp.Resolving; s <= policyarp.Unsupported; s++ {
		gauge(c.arpEntries, st.ARPEntries[s], s.String())
	}
	counter(c.arpResolutions, st.ARP.Resolutions)
	counter(c.arpAged, st.ARP.Aged)
	counter(c.arpInvalidations, st.ARP.Invalidations)
	counter(c.arpFlushes, st.ARP.NeighborFlushes)
	counter(c.arpFailures, st.ARP.Failures)
	c.collectLinkDrops(counter)
	for r := range policyarp.NumMACChangeReasons {
		counter(c.arpMACChanges, st.ARP.MACChangesBy[r], policyarp.MACChangeReason(r).String())
	}
	counter(c.arpEvictions, st.ARP.Evictions)
	counter(c.arpAnnouncements, st.ARP.AnnouncedSame, "same-mac")
	counter(c.arpAnnouncements, st.ARP.AnnounceDeferred, "rate-limited")
	counter(c.arpPMTUReports, st.ARP.PathMTUUpdates, "lowered")
	counter(c.arpPMTUReports, st.ARP.PathMTUIgnored, "ignored")
	counter(c.arpPMTUExpired, st.ARP.PathMTUExpired)

	if c.s == nil {
		return
	}
	rs := c.s.Stats()
	all := rs.Relayed.Add(rs.RelayedRTCP)
	gauge(c.relays, rs.Relays)
	counter(c.relayPackets, all.ReceivedPackets, "received")
	counter(c.relayPackets, all.SentPackets, "sent")
	counter(c.relayBytes, all.ReceivedBytes, "received")
	counter(c.relayBytes, all.SentBytes, "sent")
	counter(c.relayRTCPPackets, rs.RelayedRTCP.ReceivedPackets, "received")
	counter(c.relayRTCPPackets, rs.RelayedRTCP.SentPackets, "sent")
	counter(c.relayDropped, all.NoPeer, "no_peer")
	counter(c.relayDropped, all.ForeignSource, "foreign_source")
	counter(c.relayDropped, all.SendErrors+rs.ReflectErrors, "send_error")
	gauge(c.reflectorPorts, rs.Reflecting)
	counter(c.reflected, rs.Reflected)
	for r, n := range rs.Ended {
		counter(c.relaysEnded, n, relay.EndReason(r).String())
	}
	histogram(ch, c.streamJitter, rs.Jitter)
	histogram(ch, c.streamLoss, rs.Loss)
}

// histogram exports a relay.Histogram (per-bucket counts) as Prometheus's
// cumulative buckets.
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h relay.Histogram) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, le := range h.Bounds {
		cum += h.Counts[i]
		buckets[le] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}

// collectLinkDrops reports the drops of every link of the manager's stack
// that counts them (link.DropReporter).
func (c *Collector) collectLinkDrops(counter func(d *prometheus.Desc, v uint64, labels ...string)) {
	st := c.m.Stack()
	var nics map[tcpip.NICID]tcpipstack.NICInfo
	var drops []link.Drop
	for i := range st.NumNICs() {
		r, ok := st.Link(i).(link.DropReporter)
		if !ok {
			continue
		}
		if nics == nil {
			nics = st.Netstack().NICInfo()
		}
		name := nics[st.NICID(i)].Name
		if name == "" {
			name = fmt.Sprintf("nic%d", st.NICID(i))
		}
		drops = r.AppendDrops(drops[:0])
		for _, d := range drops {
			counter(c.linkDropped, d.Packets, name, d.Reason)
		}
	}
}

// buildInfoGauge is mediastack_build_info: 1, labelled with which
// mediastack is running (the usual _build_info idiom: join it on its
// labels, or alert when versions differ across a fleet).
func buildInfoGauge(b buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "mediastack_build_info",
		Help:        "Always 1; the labels say which mediastack is running: its version and commit, the Go toolchain and gVisor's version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion, "gvisor": b.GVisor},
	})
	g.Set(1)
	return g
}

// Handler serves the collector's metrics, mediastack_build_info, and the
// Go runtime's and the process's metrics, in the Prometheus text format
// (on a registry of its own).
func Handler(m *mediaport.Manager, s *relay.Service) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(m, s), buildInfoGauge(buildinfo.Read()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
