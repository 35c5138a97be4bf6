package relay

import (
	"net/netip"
	"slices"
	"time"
)

// Counters count what a relay side did with one kind of media.
type Counters struct {
	// Received: datagrams (and bytes) from the side's peer, arriving on its port.
	ReceivedPackets, ReceivedBytes uint64
	// Sent: datagrams (and bytes) sent from the side's port to its peer.
	SentPackets, SentBytes uint64
	// NoPeer: datagrams for the side dropped because it had no peer yet.
	// ForeignSource: datagrams arriving from a source other than the
	// side's peer, dropped (strict source and learning included).
	// SendErrors: sends that failed.
	NoPeer, ForeignSource, SendErrors uint64
}

// Add returns the sums of c's and o's counts.
func (c Counters) Add(o Counters) Counters { return c.add(o) }

func (c Counters) add(o Counters) Counters {
	c.ReceivedPackets += o.ReceivedPackets
	c.ReceivedBytes += o.ReceivedBytes
	c.SentPackets += o.SentPackets
	c.SentBytes += o.SentBytes
	c.NoPeer += o.NoPeer
	c.ForeignSource += o.ForeignSource
	c.SendErrors += o.SendErrors
	return c
}

// Errors sums the datagrams dropped for any reason.
func (c Counters) Errors() uint64 { return c.NoPeer + c.ForeignSource + c.SendErrors }

// Info is a snapshot of a relay.
type Info struct {
	ID    string
	Label string
	Ports [2]uint16
	// Peers are the sides' RTP peers now: expected, learned, or the zero
	// AddrPort when unknown.
	Peers        [2]netip.AddrPort
	Sides        [2]SideInfo
	RTCP         bool
	Learning     Learning
	StrictSource bool
	Permanent    bool
	Created      time.Time
}

// SideInfo is one side of a relay.
type SideInfo struct {
	Port uint16
	// Peer is where the side sends RTP now.
	Peer netip.AddrPort
	// Fixed: the peer was given by signalling (and may have been learned
	// since); else it is learned from the media.
	Fixed bool
	// Counters count RTP, and whatever else arrives on the RTP port that
	// is not RTCP.
	Counters
	// Expected is the RTP peer signalling gave; State what the side knows
	// of its peer.
	Expected netip.AddrPort
	State    PeerState
	// RTCPPort is the side's RTCP port (0 without RTCP); RTCPPeer where
	// its RTCP goes (the RTP peer when Mux), in RTCPState.
	RTCPPort  uint16
	RTCPPeer  netip.AddrPort
	RTCPState PeerState
	Mux       bool
	Silent    bool
	// RTCP counts RTCP, on the RTCP port or demultiplexed.
	RTCP Counters
	// LastPacket is when the side last received a datagram from its peer
	// (zero: never).
	LastPacket time.Time
	// Stream is the RTP stream the side's peer sends (RFC 3550 A.3, A.8).
	Stream StreamStats
	// Report is what the side's peer reports in RTCP about the media it
	// receives from the relay.
	Report ReportStats
	// StatsSkipped counts datagrams relayed but left out of Stream and
	// Report because the API was reading them at that instant.
	StatsSkipped uint64
}

// StreamStats describe an RTP stream received.
type StreamStats struct {
	SSRC        uint32
	PayloadType uint8
	// ClockRate of PayloadType, 0 when unknown (then Jitter is 0).
	ClockRate uint32
	// HighestSeq is the extended highest sequence number received.
	HighestSeq uint32
	// Expected and Received packets of the current SSRC (A.3); Lost is
	// cumulative over the side's SSRCs and restarts (negative with
	// duplicates).
	Expected int64
	Received uint64
	Lost     int64
	// Jitter is the inter-arrival jitter (A.8).
	Jitter time.Duration
	// Restarts counts sequence number restarts (A.1's bad_seq).
	Restarts uint64
}

// LossRatio is Lost over what was expected, in [0, 1].
func (s StreamStats) LossRatio() float64 {
	total := float64(s.Received) + float64(s.Lost)
	if s.Lost <= 0 || total <= 0 {
		return 0
	}
	return min(float64(s.Lost)/total, 1)
}

// ReportStats are from the RTCP a side's peer sends.
type ReportStats struct {
	// SenderReports and ReceiverReports count SR and RR packets;
	// Malformed compounds that did not parse to the end.
	SenderReports, ReceiverReports, Malformed uint64
	// SSRC is the reporter's; the rest is from the first report block of
	// its latest report (At; zero: none yet), on Source.
	SSRC, Source uint32
	At           time.Time
	// FractionLost in [0, 1]; CumulativeLost as reported.
	FractionLost   float64
	CumulativeLost int32
	// Jitter as reported, converted with the clock rate of the stream the
	// relay sends to the peer (0 when unknown).
	Jitter time.Duration
	// RTT is the round trip between the relay and the peer, from the
	// LSR and DLSR of its reports on sender reports the relay passed on
	// (0: unknown).
	RTT time.Duration
}

// Info returns the relay's state.
func (r *Relay) Info() Info {
	info := Info{
		ID: r.id, Label: r.label, RTCP: r.rtcp, Learning: r.learning, StrictSource: r.strict,
		Permanent: r.permanent, Created: r.s.wall(r.created),
	}
	var rates [2]uint32
	for i := range r.sides {
		sd := &r.sides[i]
		si := SideInfo{
			Counters: sd.counters[kindRTP].snapshot(), RTCP: sd.counters[kindRTCP].snapshot(),
			Mux: sd.mux.Load(), Silent: sd.silent.Load(), StatsSkipped: sd.statsSkipped.Load(),
		}
		rtp, rtcp := &sd.streams[kindRTP], &sd.streams[kindRTCP]
		if p := rtp.port.Load(); p != nil {
			si.Port = p.Port()
		}
		if p := rtcp.port.Load(); p != nil {
			si.RTCPPort = p.Port()
		}
		rtp.mu.Lock()
		si.Expected, si.Fixed = rtp.expected, rtp.given
		rtp.mu.Unlock()
		if ps := rtp.peer.Load(); ps != nil {
			si.Peer, si.State = ps.addr, ps.state
		}
		if si.Mux {
			si.RTCPPeer, si.RTCPState = si.Peer, si.State
		} else if ps := rtcp.peer.Load(); ps != nil {
			si.RTCPPeer, si.RTCPState = ps.addr, ps.state
		}
		if si.ReceivedPackets+si.RTCP.ReceivedPackets > 0 {
			si.LastPacket = r.s.wall(int64(max(rtp.lastRx.Load(), rtcp.lastRx.Load())))
		}
		sd.statsMu.Lock()
		src := sd.rtp
		rep := sd.report
		sd.statsMu.Unlock()
		if src.valid {
			si.Stream = StreamStats{
				SSRC: src.ssrc, PayloadType: src.pt, ClockRate: src.rate, HighestSeq: src.extMax(),
				Expected: src.expected(), Received: src.received, Lost: src.priorLost + src.lost(),
				Jitter: tsDuration(src.jitterTS(), src.rate), Restarts: src.restarts,
			}
			rates[i] = src.rate
		}
		si.Report = ReportStats{
			SenderReports: rep.srs, ReceiverReports: rep.rrs, Malformed: rep.malformed,
			SSRC: rep.sender, RTT: rep.rtt,
		}
		if rep.hasBlock {
			b := rep.block
			si.Report.Source, si.Report.At = b.ssrc, r.s.wall(rep.at)
			si.Report.FractionLost, si.Report.CumulativeLost = float64(b.fractionLost)/256, b.cumLost
			si.Report.Jitter = time.Duration(b.jitter) // converted below
		}
		info.Sides[i], info.Ports[i], info.Peers[i] = si, si.Port, si.Peer
	}
	// A side's peer reports on what it receives: the other side's stream.
	for i := range info.Sides {
		rep := &info.Sides[i].Report
		rep.Jitter = tsDuration(uint32(rep.Jitter), rates[1-i])
	}
	return info
}

// Histogram counts observations in buckets, as Prometheus histograms do.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending; Counts[i] counts
	// the observations in (Bounds[i-1], Bounds[i]], and Counts[len(Bounds)]
	// those above the last bound.
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Buckets of Stats.Jitter (seconds) and Stats.Loss (ratio).
var (
	JitterBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5}
	LossBuckets   = []float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}
)

func newHistogram(bounds []float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

func (h *Histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.Bounds, v)
	h.Counts[i]++
	h.Count++
	h.Sum += v
}

func (h Histogram) clone() Histogram {
	h.Counts = slices.Clone(h.Counts)
	return h
}
