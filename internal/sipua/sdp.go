package sipua

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Media is where one m= section of an SDP asks media to be sent.
type Media struct {
	Type string         // audio, video...
	RTP  netip.AddrPort // c= address (the media's, else the session's) and m= port
	RTCP netip.AddrPort // a=rtcp, else the RTP port + 1 (RFC 3605), or RTP's with rtcp-mux
	Mux  bool           // a=rtcp-mux
}

// ParseMedia returns the media sections of an SDP, in order.
func ParseMedia(b []byte) ([]Media, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(string(b)); err != nil {
		return nil, fmt.Errorf("sdp: %w", err)
	}
	if len(s.MediaDescriptions) == 0 {
		return nil, ErrNoMedia
	}
	var out []Media
	for i, md := range s.MediaDescriptions {
		conn := s.ConnectionInformation
		if md.ConnectionInformation != nil {
			conn = md.ConnectionInformation
		}
		if conn == nil || conn.Address == nil {
			return nil, fmt.Errorf("sdp: m= section %d has no c= address", i)
		}
		addr, err := netip.ParseAddr(conn.Address.Address)
		if err != nil {
			return nil, fmt.Errorf("sdp: m= section %d: %w", i, err)
		}
		m := Media{Type: md.MediaName.Media, RTP: netip.AddrPortFrom(addr, uint16(md.MediaName.Port.Value))}
		_, m.Mux = md.Attribute("rtcp-mux")
		m.RTCP = netip.AddrPortFrom(addr, m.RTP.Port()+1)
		if m.Mux {
			m.RTCP = m.RTP
		}
		if v, ok := md.Attribute("rtcp"); ok {
			// a=rtcp:PORT [IN IP4 ADDR]
			f := strings.Fields(v)
			port, err := strconv.ParseUint(f[0], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("sdp: a=rtcp:%s: %w", v, err)
			}
			m.RTCP = netip.AddrPortFrom(addr, uint16(port))
			if len(f) == 4 {
				if a, err := netip.ParseAddr(f[3]); err == nil {
					m.RTCP = netip.AddrPortFrom(a, uint16(port))
				}
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// AudioSDP returns a phone's SDP: one G.711 µ-law (PCMU) audio stream to be
// received at rtp, RTCP on the next port.
func AudioSDP(rtp netip.AddrPort, sessionID uint64) []byte {
	family := "IP4"
	if rtp.Addr().Is6() {
		family = "IP6"
	}
	return fmt.Appendf(nil, "v=0\r\no=- %d 1 IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
		sessionID, family, rtp.Addr(), family, rtp.Addr(), rtp.Port())
}
