package calls

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/mediastack/mediastack/relay"
)

// Info is a snapshot of a call: what Query returns, and Delete just before
// the call ends.
type Info struct {
	CallID     string
	Created    time.Time
	LastSignal time.Time
	// Parties are the first offerer, then the answerer once it has a tag
	// or an SDP.
	Parties []PartyInfo
}

// PartyInfo is one party (rtpengine's monologue).
type PartyInfo struct {
	Tag, Label string
	Created    time.Time
	Medias     []MediaInfo
}

// MediaInfo is one m= line as one party sees it.
type MediaInfo struct {
	Index          int // 1-based
	Type, Protocol string
	// Relayed: the m= line has a relay (it is not rejected nor passed
	// through); RTP and RTCP are then the relay side facing the party.
	Relayed bool
	// Filled: the party's SDP described the m= line. Send and Recv are
	// the party's direction; RTCPMux whether it muxes RTCP.
	Filled, Send, Recv, RTCPMux bool
	RTP, RTCP                   StreamInfo
}

// StreamInfo is the RTP or the RTCP stream between a party and the relay
// side facing it.
type StreamInfo struct {
	// LocalAddr and LocalPort are where the party sends it.
	LocalAddr netip.Addr
	LocalPort uint16
	// Endpoint is where the relay sends it now (expected or learned), in
	// State; Advertised what the party's SDP said.
	Endpoint   netip.AddrPort
	Advertised netip.AddrPort
	State      relay.PeerState
	// LastPacket is when the party last sent anything (zero: never).
	LastPacket time.Time
	// Counters count what the party sent (Received…) and was sent
	// (Sent…).
	relay.Counters
	// Stream is the RTP stream the party sends; Report what its RTCP
	// reports of the stream it receives. Only in RTP's StreamInfo.
	Stream relay.StreamStats
	Report relay.ReportStats
}

// Errors counts what the party sent that was dropped or could not be
// sent on, rtpengine's per-stream "errors".
func (s StreamInfo) Errors() uint64 { return s.ForeignSource + s.NoPeer + s.SendErrors }

func (r *Registry) infoLocked(c *call) Info {
	info := Info{CallID: c.id, Created: c.created, LastSignal: c.lastSignal}
	relays := make([]relay.Info, len(c.medias))
	for i, cm := range c.medias {
		if cm.relay != nil {
			relays[i] = cm.relay.Info()
		}
	}
	for side := range c.parties {
		pt := &c.parties[side]
		if side == 1 && pt.tag == "" && !c.filled(side) {
			continue
		}
		local, _ := r.mediaAddr(pt.family, false)
		pi := PartyInfo{Tag: pt.tag, Label: pt.label, Created: pt.created}
		for i, cm := range c.medias {
			ms := &cm.sides[side]
			mi := MediaInfo{
				Index: cm.index, Type: cm.typ, Protocol: cm.proto,
				Relayed: cm.relay != nil, Filled: ms.filled, Send: !ms.silent, Recv: ms.filled, RTCPMux: ms.mux,
			}
			if cm.relay != nil {
				si := relays[i].Sides[side]
				mi.RTP = StreamInfo{
					LocalAddr: local, LocalPort: si.Port, Endpoint: si.Peer, Advertised: ms.peer, State: si.State,
					LastPacket: si.LastPacket, Counters: si.Counters, Stream: si.Stream, Report: si.Report,
				}
				rtcpAdv := ms.rtcpPeer
				if !rtcpAdv.IsValid() && ms.peer.IsValid() {
					rtcpAdv = netip.AddrPortFrom(ms.peer.Addr(), ms.peer.Port()+1)
				}
				mi.RTCP = StreamInfo{
					LocalAddr: local, LocalPort: si.RTCPPort, Endpoint: si.RTCPPeer, Advertised: rtcpAdv, State: si.RTCPState,
					LastPacket: si.LastPacket, Counters: si.RTCP,
				}
				if si.Mux {
					mi.RTCP.LocalPort = si.Port
				}
			}
			pi.Medias = append(pi.Medias, mi)
		}
		info.Parties = append(info.Parties, pi)
	}
	return info
}

// filled reports whether party side described any m= line.
func (c *call) filled(side int) bool {
	for _, cm := range c.medias {
		if cm.sides[side].filled {
			return true
		}
	}
	return false
}

// Traffic is what parties sent: packets and bytes relayed or not, and
// errors (rtpengine's "stats").
type Traffic struct{ Packets, Bytes, Errors uint64 }

// Traffic is what the party sent on the stream.
func (s StreamInfo) Traffic() Traffic {
	return Traffic{Packets: s.ReceivedPackets, Bytes: s.ReceivedBytes, Errors: s.Errors()}
}

func (t *Traffic) add(o Traffic) {
	t.Packets, t.Bytes, t.Errors = t.Packets+o.Packets, t.Bytes+o.Bytes, t.Errors+o.Errors
}

// Totals are the RTP and RTCP the call's parties sent (rtpengine's
// "totals").
func (info Info) Totals() (rtp, rtcp Traffic) {
	for _, p := range info.Parties {
		for _, m := range p.Medias {
			rtp.add(m.RTP.Traffic())
			rtcp.add(m.RTCP.Traffic())
		}
	}
	return rtp, rtcp
}

// logArgs are the final counters of a call for its log line.
func (info Info) logArgs(now time.Time) []any {
	rtp, rtcp := info.Totals()
	args := []any{"call_id", info.CallID, "duration", now.Sub(info.Created).Round(time.Millisecond),
		"rtp_packets", rtp.Packets, "rtp_bytes", rtp.Bytes, "rtcp_packets", rtcp.Packets, "errors", rtp.Errors + rtcp.Errors}
	for _, p := range info.Parties {
		for _, m := range p.Medias {
			if m.Relayed && m.RTP.Stream.Received > 0 {
				args = append(args, "loss_"+p.Tag+"_"+strconv.Itoa(m.Index), m.RTP.Stream.Lost,
					"jitter_"+p.Tag+"_"+strconv.Itoa(m.Index), m.RTP.Stream.Jitter)
			}
		}
	}
	return args
}
