package ng

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/mediastack/mediastack/calls"
	"github.com/mediastack/mediastack/internal/bencode"
	"github.com/mediastack/mediastack/relay"
)

// callStats is the statistics part of the query and delete replies, in
// rtpengine 10.5's shape (rtpengine-ng.md §2.4): created, "last signal",
// SSRC, tags → medias → streams, totals.
func callStats(info calls.Info) bencode.Dict {
	tags := bencode.Dict{}
	ssrc := bencode.Dict{}
	for i, p := range info.Parties {
		key := p.Tag
		if key == "" {
			key = fmt.Sprintf("<untagged %d>", i)
		}
		t := bencode.Dict{
			"tag":     p.Tag,
			"created": p.Created.Unix(),
			"medias":  medias(p.Medias, ssrc, info.LastSignal),
		}
		if p.Label != "" {
			t["label"] = p.Label
		}
		// The other party is this one's peer in an offer/answer call.
		var peers bencode.List
		for j, o := range info.Parties {
			if j != i {
				peers = append(peers, bencode.Dict{"tag": o.Tag, "type": "offer/answer"})
			}
		}
		t["subscriptions"], t["subscribers"] = peers, peers
		if peers == nil {
			t["subscriptions"], t["subscribers"] = bencode.List{}, bencode.List{}
		}
		tags[key] = t
	}
	rtp, rtcp := info.Totals()
	return bencode.Dict{
		"created":     info.Created.Unix(),
		"created_us":  int64(info.Created.Nanosecond() / 1000),
		"last signal": info.LastSignal.Unix(),
		"SSRC":        ssrc,
		"tags":        tags,
		"totals": bencode.Dict{
			"RTP":  traffic(rtp),
			"RTCP": traffic(rtcp),
		},
	}
}

func traffic(t calls.Traffic) bencode.Dict {
	return bencode.Dict{"packets": t.Packets, "bytes": t.Bytes, "errors": t.Errors}
}

// medias lists a party's m= lines; a stream that never received anything
// has its last signal as "last packet", as in rtpengine.
func medias(ms []calls.MediaInfo, ssrc bencode.Dict, lastSignal time.Time) bencode.List {
	out := bencode.List{}
	for _, m := range ms {
		d := bencode.Dict{"index": m.Index, "type": m.Type, "protocol": m.Protocol}
		var flags []string
		if m.Filled {
			flags = append(flags, "initialized")
		}
		if m.Send {
			flags = append(flags, "send")
		}
		if m.Recv {
			flags = append(flags, "recv")
		}
		if m.RTCPMux {
			flags = append(flags, "rtcp-mux")
		}
		streams := bencode.List{}
		if m.Relayed {
			streams = append(streams, stream(m.RTP, "RTP", m.Filled, lastSignal), stream(m.RTCP, "RTCP", m.Filled, lastSignal))
			if s := m.RTP.Stream; s.Received > 0 {
				ssrc[strconv.FormatUint(uint64(s.SSRC), 10)] = ssrcStats(m.RTP)
			}
		}
		d["streams"] = streams
		d["flags"] = append([]string{}, flags...)
		out = append(out, d)
	}
	return out
}

func stream(s calls.StreamInfo, kind string, filled bool, lastSignal time.Time) bencode.Dict {
	flags := []string{kind}
	if filled {
		flags = append(flags, "filled")
	}
	if s.State == relay.PeerLearned {
		flags = append(flags, "confirmed")
	}
	d := bencode.Dict{
		"endpoint":            endpoint(s.Endpoint),
		"advertised endpoint": endpoint(s.Advertised),
		"last packet":         lastPacket(s.LastPacket, lastSignal),
		"flags":               flags,
		"stats":               traffic(s.Traffic()),
	}
	if s.LocalPort != 0 {
		d["local port"] = s.LocalPort
		d["local address"] = s.LocalAddr.String()
		d["family"] = family(s.LocalAddr)
	}
	if kind == "RTP" && s.Stream.Received > 0 {
		d["SSRC"] = s.Stream.SSRC
	}
	return d
}

// ssrcStats is our per-SSRC entry: what RFC 3550's receiver statistics
// give (rtpengine's entry is MOS-centred; Kamailio reads it only for MOS
// pseudo-variables, which we leave out).
func ssrcStats(s calls.StreamInfo) bencode.Dict {
	return bencode.Dict{
		"cumulative loss": s.Stream.Lost,
		"jitter":          durationMillis(s.Stream.Jitter),
		"packets":         s.Stream.Received,
	}
}

func durationMillis(d time.Duration) int64 { return d.Milliseconds() }

func lastPacket(t, lastSignal time.Time) int64 {
	if t.IsZero() || t.Before(lastSignal) {
		return lastSignal.Unix()
	}
	return t.Unix()
}

func endpoint(ap netip.AddrPort) bencode.Dict {
	if !ap.IsValid() {
		return bencode.Dict{}
	}
	return bencode.Dict{"family": family(ap.Addr()), "address": ap.Addr().String(), "port": ap.Port()}
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// statistics is the statistics reply's tree, the parts of rtpengine's
// that we count (rtpengine-ng.md §2.4).
func (s *Server) statistics() bencode.Dict {
	st := s.calls.Stats()
	var relayed, relayedRTCP relay.Counters
	if s.relays != nil {
		rs := s.relays.Stats()
		relayed, relayedRTCP = rs.Relayed, rs.RelayedRTCP
	}
	packets := relayed.SentPackets + relayedRTCP.SentPackets
	errs := relayed.ForeignSource + relayed.NoPeer + relayed.SendErrors +
		relayedRTCP.ForeignSource + relayedRTCP.NoPeer + relayedRTCP.SendErrors
	bytes := relayed.SentBytes + relayedRTCP.SentBytes

	s.mu.Lock()
	proxies := bencode.List{}
	addrs := make([]netip.Addr, 0, len(s.proxies))
	for a := range s.proxies {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		d := commandCounts(s.proxies[a], "")
		d["proxy"] = a.String()
		proxies = append(proxies, d)
	}
	control := commandCounts(&s.total, "total")
	s.mu.Unlock()
	control["proxies"] = proxies

	return bencode.Dict{
		"currentstatistics": bencode.Dict{
			"sessionsown":     st.Calls,
			"sessionsforeign": 0,
			"sessionstotal":   st.Calls,
			"transcodedmedia": 0,
		},
		"totalstatistics": bencode.Dict{
			"uptime":                    strconv.FormatInt(int64(s.now().Sub(s.start)/time.Second), 10),
			"managedsessions":           st.Created,
			"rejectedsessions":          st.Rejected,
			"timeoutsessions":           st.TimedOut,
			"silenttimeoutsessions":     st.SilentTimedOut,
			"finaltimeoutsessions":      st.FinalTimedOut,
			"offertimeoutsessions":      0,
			"regularterminatedsessions": st.Deleted,
			"forcedterminatedsessions":  0,
			"relayedpackets":            packets,
			"relayedpacketerrors":       errs,
			"relayedbytes":              bytes,
			"relayedpackets_user":       packets,
			"relayedpacketerrors_user":  errs,
			"relayedbytes_user":         bytes,
		},
		"controlstatistics": control,
	}
}

// commandCounts are rtpengine's NAMEcount keys (prefixed for the totals).
func commandCounts(c *proxyCounts, prefix string) bencode.Dict {
	d := bencode.Dict{}
	for cmd := range knownCommands {
		d[prefix+cmd+"count"] = c.commands[cmd]
	}
	d[prefix+"errorcount"] = c.errors
	return d
}
