package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// specSyntax is what ParseSpec takes, for its errors.
const specSyntax = "want A:B, two ports, each optionally followed by @IP:PORT, the peer that side sends to " +
	"(e.g. 20000:20002 or 20000:20002@198.51.100.1:30000)"

// ParseSpec parses a relay as `mediastack serve --relay` takes it: A:B,
// the relay's two local ports, each optionally followed by @IP:PORT, the
// fixed peer that side sends to (without one, the side latches its peer
// from the first datagram it receives):
//
//	20000:20002                                      both sides latched
//	20000:20002@198.51.100.1:30000                   B sends to 198.51.100.1:30000
//	20000@198.51.100.3:40000:20002@[2001:db8::1]:30000  both fixed
//
// The error says what is wrong and how the spec should look; it does not
// repeat the spec. Spec.String formats a spec back.
func ParseSpec(s string) (Spec, error) {
	var spec Spec
	rest := s
	for i := range spec.Ports {
		if i == 1 {
			var ok bool
			if rest, ok = strings.CutPrefix(rest, ":"); !ok {
				return Spec{}, errors.New(specSyntax)
			}
		}
		var err error
		if spec.Ports[i], spec.Peers[i], rest, err = parseSide(rest); err != nil {
			return Spec{}, err
		}
	}
	if rest != "" {
		return Spec{}, errors.New(specSyntax)
	}
	return spec, nil
}

// parseSide parses PORT[@IP:PORT] at the start of s.
func parseSide(s string) (port uint16, peer netip.AddrPort, rest string, err error) {
	port, rest, ok := cutPort(s)
	if !ok {
		return 0, peer, "", errors.New(specSyntax)
	}
	rest, ok = strings.CutPrefix(rest, "@")
	if !ok {
		return port, peer, rest, nil
	}
	// The peer's address runs to its closing bracket (IPv6) or to the
	// colon before its port (IPv4).
	end := strings.IndexByte(rest, ':')
	if strings.HasPrefix(rest, "[") {
		end = strings.IndexByte(rest, ']') + 1
	}
	if end <= 0 || end >= len(rest) || rest[end] != ':' {
		return 0, peer, "", fmt.Errorf("the peer after @ in %q is not IP:PORT (e.g. 198.51.100.1:30000 or [2001:db8::1]:30000)", s)
	}
	_, after, _ := cutPort(rest[end+1:])
	text := rest[:len(rest)-len(after)]
	if peer, err = parsePeer(text); err != nil {
		return 0, peer, "", fmt.Errorf("the peer after @: %w", err)
	}
	return port, peer, after, nil
}

// cutPort cuts the decimal port at the start of s.
func cutPort(s string) (uint16, string, bool) {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	p, err := strconv.ParseUint(s[:n], 10, 16)
	if err != nil || p == 0 {
		return 0, s, false
	}
	return uint16(p), s[n:], true
}

// parsePeer parses a peer ip:port, as the API and ParseSpec take it; the
// error starts with the text.
func parsePeer(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not ip:port (e.g. 198.51.100.1:5004 or [2001:db8::1]:5004)", s)
	}
	return ap, nil
}

// String formats the spec as ParseSpec takes it.
func (s Spec) String() string {
	var b strings.Builder
	for i, port := range s.Ports {
		if i == 1 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(int(port)))
		if s.Peers[i].IsValid() {
			b.WriteString("@" + s.Peers[i].String())
		}
	}
	return b.String()
}
