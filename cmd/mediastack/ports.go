package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mediastack/mediastack/relay"
)

// parsePortRange parses --rtp-ports LO-HI, naming what is wrong with a bad
// one.
func parsePortRange(s string) (lo, hi uint16, err error) {
	los, his, ok := strings.Cut(s, "-")
	l, errL := strconv.ParseUint(los, 10, 16)
	h, errH := strconv.ParseUint(his, 10, 16)
	switch {
	case !ok || errL != nil || errH != nil:
		return 0, 0, usageErrorf("--rtp-ports %q: want LO-HI, two UDP ports from 1 to 65535 with LO <= HI (e.g. 20000-20999)", s)
	case l == 0:
		return 0, 0, usageErrorf("--rtp-ports %q: port 0 is not a UDP port a peer can send to; start the range at 1 or above (e.g. --rtp-ports 1-%d)", s, h)
	case l > h:
		return 0, 0, usageErrorf("--rtp-ports %q: LO %d is above HI %d; write the lower port first (--rtp-ports %d-%d)", s, l, h, h, l)
	}
	return uint16(l), uint16(h), nil
}

// rtcpRelayWarnings warns about relays on odd ports, RTCP's (RTP takes an
// even port and RTCP the port after it, RFC 3550 section 11), that are not
// the RTCP twin of an RTP relay given beside them: probably RTP ports typed
// off by one, or an RTCP relay whose RTP relay is missing. Relays carry
// whatever arrives, so this is a warning, not an error.
func rtcpRelayWarnings(specs []relay.Spec) []string {
	have := map[[2]uint16]bool{}
	for _, s := range specs {
		have[s.Ports] = true
	}
	var warnings []string
	for _, s := range specs {
		a, b := s.Ports[0], s.Ports[1]
		if a%2 == 0 && b%2 == 0 {
			continue
		}
		rtp := [2]uint16{a &^ 1, b &^ 1}
		rtcp := [2]uint16{rtp[0] + 1, rtp[1] + 1}
		if s.Ports == rtcp && have[rtp] {
			continue
		}
		odd := a
		if a%2 == 0 {
			odd = b
		}
		warnings = append(warnings, fmt.Sprintf("--relay %s: port %d is odd, an RTCP port (RTP takes the even port, RTCP the one after it); "+
			"for a call's RTP and RTCP give --relay %d:%d --relay %d:%d", s, odd, rtp[0], rtp[1], rtcp[0], rtcp[1]))
	}
	return warnings
}
