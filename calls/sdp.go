package calls

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// sdpIn is an SDP a party sent: the parsed description, rewritten in place
// for the other party, and what each media section says.
type sdpIn struct {
	desc   sdp.SessionDescription
	medias []mediaIn
}

// mediaIn is what one m= section of a party's SDP says.
type mediaIn struct {
	typ, proto string
	port       uint16
	// relayed: a UDP transport on a port other than 0, which a relay
	// carries. Other sections (rejected, TCP) pass through untouched.
	relayed bool
	rtp     bool           // an RTP profile: RTCP, a=rtcp and rtpmaps apply
	addr    netip.Addr     // c= of the section, else of the session
	rtcp    netip.AddrPort // a=rtcp; zero when absent
	mux     bool           // a=rtcp-mux
	dir     string         // the direction attribute, "" when absent
	ice     bool           // ICE attributes present
	ptime   string         // a=ptime
	// clockRates are the a=rtpmap clock rates of the dynamic payload
	// types (relay.Spec.ClockRates).
	clockRates [32]uint32
}

// silent reports whether the party does not send: on hold, or its
// direction says so.
func (m *mediaIn) silent() bool { return m.hold() || m.dir == "recvonly" || m.dir == "inactive" }

// peer is where the section's party receives RTP.
func (m *mediaIn) peer() netip.AddrPort { return netip.AddrPortFrom(m.addr, m.port) }

// rtcpPeer is where it receives RTCP: a=rtcp, else zero (the relay's
// default: RTP port + 1, or the RTP port when muxed).
func (m *mediaIn) rtcpPeer() netip.AddrPort { return m.rtcp }

// hold reports whether the party put the section on hold the old way
// (RFC 2543): a zero connection address.
func (m *mediaIn) hold() bool { return m.addr.IsUnspecified() }

// ICE attributes, stripped from what we send: the relay is the only path.
var iceAttributes = []string{"ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch", "candidate", "remote-candidates", "end-of-candidates"}

var directions = []string{"sendrecv", "sendonly", "recvonly", "inactive"}

// parseSDP parses what a party sent. maxMedia bounds the m= sections, and
// is checked before the parser builds anything.
func parseSDP(b []byte, maxMedia int) (*sdpIn, error) {
	if n := countMedia(b); n > maxMedia {
		return nil, fmt.Errorf("%w: %d media sections, at most %d per call", ErrTooManyMedia, n, maxMedia)
	}
	in := &sdpIn{}
	if err := in.desc.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSDP, err)
	}
	if len(in.desc.MediaDescriptions) == 0 {
		return nil, ErrNoMedia
	}
	sessionDir := ""
	for _, a := range in.desc.Attributes {
		if slices.Contains(directions, a.Key) {
			sessionDir = a.Key
		}
	}
	for i, md := range in.desc.MediaDescriptions {
		m := mediaIn{
			typ:   md.MediaName.Media,
			proto: strings.Join(md.MediaName.Protos, "/"),
			dir:   sessionDir,
		}
		if md.MediaName.Port.Value < 0 || md.MediaName.Port.Value > 65535 {
			return nil, fmt.Errorf("%w: media %d: port %d", ErrSDP, i+1, md.MediaName.Port.Value)
		}
		m.port = uint16(md.MediaName.Port.Value)
		m.rtp = slices.Contains(md.MediaName.Protos, "RTP")
		m.relayed = m.port != 0 && !slices.Contains(md.MediaName.Protos, "TCP")
		conn := md.ConnectionInformation
		if conn == nil {
			conn = in.desc.ConnectionInformation
		}
		if m.relayed {
			var err error
			if m.addr, err = connAddr(conn); err != nil {
				return nil, fmt.Errorf("%w: media %d: %v", ErrSDP, i+1, err)
			}
		}
		for _, a := range md.Attributes {
			switch {
			case a.Key == "rtcp":
				if m.rtcp = parseRTCP(a.Value, m.addr); !m.rtcp.IsValid() && m.relayed {
					return nil, fmt.Errorf("%w: media %d: a=rtcp:%s", ErrSDP, i+1, a.Value)
				}
			case a.Key == "rtpmap":
				m.addClockRate(a.Value)
			case a.Key == "ptime":
				m.ptime = a.Value
			case a.Key == "rtcp-mux":
				m.mux = true
			case slices.Contains(directions, a.Key):
				m.dir = a.Key
			case slices.Contains(iceAttributes, a.Key):
				m.ice = true
			}
		}
		in.medias = append(in.medias, m)
	}
	return in, nil
}

// addClockRate records the clock rate of an a=rtpmap:PT ENC/RATE[/CH] of
// a dynamic payload type.
func (m *mediaIn) addClockRate(v string) {
	pt, enc, _ := strings.Cut(v, " ")
	n, err := strconv.ParseUint(pt, 10, 7)
	_, rate, _ := strings.Cut(enc, "/")
	rate, _, _ = strings.Cut(rate, "/")
	hz, err2 := strconv.ParseUint(rate, 10, 32)
	if err != nil || err2 != nil || n < 96 {
		return
	}
	m.clockRates[n-96] = uint32(hz)
}

// countMedia counts the lines starting with m=.
func countMedia(b []byte) int {
	n := 0
	if bytes.HasPrefix(b, []byte("m=")) {
		n++
	}
	return n + bytes.Count(b, []byte("\nm="))
}

// connAddr is the unicast address of a c= line.
func connAddr(c *sdp.ConnectionInformation) (netip.Addr, error) {
	if c == nil || c.Address == nil {
		return netip.Addr{}, errors.New("no c= line")
	}
	a, err := netip.ParseAddr(c.Address.Address)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("c= address %q is not an IP address", c.Address.Address)
	}
	if a.Is4() != (c.AddressType == "IP4") || a.Is4In6() || a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("c= address %s is not a unicast %s address", a, c.AddressType)
	}
	return a, nil
}

// parseRTCP parses the value of a=rtcp (RFC 3605: PORT [IN IP4|IP6
// ADDR]); without an address, RTCP goes to the RTP address addr. The
// result is zero if the value is not valid.
func parseRTCP(v string, addr netip.Addr) netip.AddrPort {
	f := strings.Fields(v)
	if len(f) != 1 && len(f) != 4 {
		return netip.AddrPort{}
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}
	}
	if len(f) == 4 {
		a, err := netip.ParseAddr(f[3])
		if err != nil || f[1] != "IN" || a.Is4() != (f[2] == "IP4") || a.Zone() != "" {
			return netip.AddrPort{}
		}
		addr = a
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// rewrite says how to rewrite a party's SDP for the other party.
type rewrite struct {
	// addr goes into every c= line, and into o= with replaceOrigin.
	addr netip.Addr
	// replaceOrigin writes addr into o=; replaceSessionConn rewrites the
	// session c= even if every section has its own; replaceZero rewrites a
	// zero address (hold) too.
	replaceOrigin, replaceSessionConn, replaceZero bool
	// rtcpAttr selects the a=rtcp line's form; originalSendrecv keeps the
	// party's direction attributes where they are.
	rtcpAttr         rtcpAttr
	originalSendrecv bool
	// medias holds what to write in each relayed section.
	medias []mediaOut
	// version goes into o=.
	version uint64
}

// mediaOut is what the other party is told about a relayed section.
type mediaOut struct {
	port     uint16 // the relay's RTP port that receives from the other party
	rtcpPort uint16 // a=rtcp: port+1, or port when RTCP is muxed
	mux      bool   // a=rtcp-mux
	ptime    string // a=ptime, the last either party gave (rtpengine's)
}

// rtcpAttr is the form of the a=rtcp line (rtpengine's flags "full rtcp
// attribute" and "no rtcp attribute").
type rtcpAttr uint8

const (
	rtcpAttrShort rtcpAttr = iota // a=rtcp:PORT
	rtcpAttrFull                  // a=rtcp:PORT IN IP4 ADDR
	rtcpAttrNone                  // no a=rtcp line
)

// apply rewrites in.desc as rtpengine does (docs/research/rtpengine-ng.md
// §3): c= and the m= ports point at the relay; a=rtcp, a=rtcp-mux and the
// direction are re-emitted after the other attributes, with an a=rtpmap for
// every payload type; ICE attributes and a=group:BUNDLE are dropped.
func (in *sdpIn) apply(w rewrite) ([]byte, error) {
	d := &in.desc
	netType := "IP4"
	if w.addr.Is6() {
		netType = "IP6"
	}
	addrText := w.addr.String()
	if w.replaceOrigin {
		d.Origin.AddressType, d.Origin.UnicastAddress = netType, addrText
	}
	d.Origin.SessionVersion = w.version
	setConn := func(c *sdp.ConnectionInformation) {
		if c == nil || c.Address == nil {
			return
		}
		if a, err := netip.ParseAddr(c.Address.Address); err == nil && a.IsUnspecified() && !w.replaceZero {
			return
		}
		c.AddressType, c.Address = netType, &sdp.Address{Address: addrText}
	}
	sessionConn := w.replaceSessionConn
	for i, md := range d.MediaDescriptions {
		if in.medias[i].relayed && md.ConnectionInformation == nil {
			sessionConn = true
		}
	}
	if sessionConn {
		setConn(d.ConnectionInformation)
	}
	d.Attributes = slices.DeleteFunc(d.Attributes, func(a sdp.Attribute) bool {
		return slices.Contains(iceAttributes, a.Key) ||
			(!w.originalSendrecv && slices.Contains(directions, a.Key)) ||
			(a.Key == "group" && strings.HasPrefix(a.Value, "BUNDLE"))
	})
	for i, md := range d.MediaDescriptions {
		m := &in.medias[i]
		if !m.relayed {
			continue
		}
		out := w.medias[i]
		md.MediaName.Port = sdp.RangedPort{Value: int(out.port)}
		setConn(md.ConnectionInformation)
		md.Attributes = rewriteAttributes(md, m, out, w, netType, addrText)
	}
	return d.Marshal()
}

// rewriteAttributes drops the attributes rtpengine re-emits, keeps the
// others where they are, and appends the re-emitted ones in rtpengine's
// order: a=mid, a=rtpmap/fmtp/rtcp-fb per payload type, the direction,
// a=rtcp, a=rtcp-mux, a=ptime.
func rewriteAttributes(md *sdp.MediaDescription, m *mediaIn, out mediaOut, w rewrite, netType, addr string) []sdp.Attribute {
	var (
		kept, mid []sdp.Attribute
		perPT     = map[string][]sdp.Attribute{}
		rtpmap    = map[string]bool{}
	)
	for _, a := range md.Attributes {
		switch key := a.Key; {
		case key == "rtcp" || key == "rtcp-mux" || slices.Contains(iceAttributes, key):
		case slices.Contains(directions, key):
			if w.originalSendrecv {
				kept = append(kept, a)
			}
		case key == "mid":
			mid = append(mid, a)
		case key == "ptime" && m.rtp:
		case (key == "rtpmap" || key == "fmtp" || key == "rtcp-fb") && m.rtp:
			pt, _, _ := strings.Cut(a.Value, " ")
			if pt == "*" || !slices.Contains(md.MediaName.Formats, pt) {
				// a=rtcp-fb:* applies to every payload type and stays;
				// lines for payload types not offered go.
				if pt == "*" {
					kept = append(kept, a)
				}
				continue
			}
			if key == "rtpmap" {
				if rtpmap[pt] {
					continue
				}
				rtpmap[pt] = true
			}
			perPT[pt] = append(perPT[pt], a)
		default:
			kept = append(kept, a)
		}
	}
	attrs := append(kept, mid...)
	if m.rtp {
		for _, pt := range md.MediaName.Formats {
			if !rtpmap[pt] {
				if enc, ok := staticPayloadTypes[pt]; ok {
					attrs = append(attrs, sdp.Attribute{Key: "rtpmap", Value: pt + " " + enc})
				}
			}
			// The rtpmap first, then fmtp and rtcp-fb, as they came.
			lines := perPT[pt]
			slices.SortStableFunc(lines, func(a, b sdp.Attribute) int { return attrRank(a.Key) - attrRank(b.Key) })
			attrs = append(attrs, lines...)
		}
	}
	if !w.originalSendrecv {
		attrs = append(attrs, sdp.Attribute{Key: outDirection(m)})
	}
	if m.rtp && out.rtcpPort != 0 && w.rtcpAttr != rtcpAttrNone {
		v := strconv.Itoa(int(out.rtcpPort))
		if w.rtcpAttr == rtcpAttrFull {
			v += " IN " + netType + " " + addr
		}
		attrs = append(attrs, sdp.Attribute{Key: "rtcp", Value: v})
	}
	if m.rtp && out.mux {
		attrs = append(attrs, sdp.Attribute{Key: "rtcp-mux"})
	}
	if m.rtp && out.ptime != "" {
		attrs = append(attrs, sdp.Attribute{Key: "ptime", Value: out.ptime})
	}
	return attrs
}

func attrRank(key string) int {
	switch key {
	case "rtpmap":
		return 0
	case "fmtp":
		return 1
	}
	return 2
}

// outDirection is the direction the other party is told: the party's own
// (sendrecv when it gave none), except that a zero address means the party
// does not receive.
func outDirection(m *mediaIn) string {
	dir := m.dir
	if dir == "" {
		dir = "sendrecv"
	}
	if m.hold() {
		switch dir {
		case "sendrecv":
			return "sendonly"
		case "recvonly":
			return "inactive"
		}
	}
	return dir
}

// staticPayloadTypes are the RTP/AVP payload types with a fixed encoding
// (RFC 3551), written as a=rtpmap when the party left them out, as
// rtpengine does (lib/rtplib.c).
var staticPayloadTypes = map[string]string{
	"0": "PCMU/8000", "3": "GSM/8000", "4": "G723/8000", "5": "DVI4/8000", "6": "DVI4/16000",
	"7": "LPC/8000", "8": "PCMA/8000", "9": "G722/8000", "10": "L16/44100", "11": "L16/44100",
	"12": "QCELP/8000", "13": "CN/8000", "14": "MPA/90000", "15": "G728/8000", "16": "DVI4/11025",
	"17": "DVI4/22050", "18": "G729/8000", "25": "CelB/90000", "26": "JPEG/90000", "28": "nv/90000",
	"31": "H261/90000", "32": "MPV/90000", "33": "MP2T/90000", "34": "H263/90000",
}
