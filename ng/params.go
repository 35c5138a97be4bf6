package ng

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/mediastack/mediastack/calls"
	"github.com/mediastack/mediastack/internal/bencode"
	"github.com/mediastack/mediastack/relay"
)

// request is a decoded ng request and typed access to its keys, which come
// with hyphens or spaces ("received-from", "received from"): a key given
// with the wrong type is an error, not a missing key.
type request struct {
	d bencode.Dict
	// warnings go into the reply's "warning".
	warnings []string
}

// lookup returns the value of the first spelling of key present: as given,
// and with hyphens and spaces swapped.
func (r *request) lookup(key string) (any, string, bool) {
	for _, k := range []string{key, strings.ReplaceAll(key, "-", " "), strings.ReplaceAll(key, " ", "-")} {
		if v, ok := r.d[k]; ok {
			return v, k, true
		}
	}
	return nil, key, false
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case bencode.List:
		return "a list"
	case bencode.Dict:
		return "a dictionary"
	}
	return fmt.Sprintf("%T", v)
}

// str returns a string key ("" when absent).
func (r *request) str(key string) (string, error) {
	v, k, ok := r.lookup(key)
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s must be a string, not %s", k, typeName(v))
	}
	return s, nil
}

// list returns a list of strings, hyphenated as rtpengine matches them
// ("session connection" = "session-connection"). A lone string counts as
// a list of one.
func (r *request) list(key string) ([]string, error) {
	v, k, ok := r.lookup(key)
	if !ok {
		return nil, nil
	}
	var items bencode.List
	switch v := v.(type) {
	case string:
		items = bencode.List{v}
	case bencode.List:
		items = v
	default:
		return nil, fmt.Errorf("%s must be a list of strings, not %s", k, typeName(v))
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, fmt.Errorf("%s must be a list of strings, not with %s", k, typeName(it))
		}
		out = append(out, strings.ReplaceAll(s, " ", "-"))
	}
	return out, nil
}

// integer returns an integer key given as an integer or a decimal string;
// def when absent.
func (r *request) integer(key string, def int64) (int64, error) {
	v, k, ok := r.lookup(key)
	if !ok {
		return def, nil
	}
	switch v := v.(type) {
	case int64:
		return v, nil
	case string:
		var n int64
		if _, err := fmt.Sscan(v, &n); err == nil && fmt.Sprint(n) == v {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s must be an integer, not %s", k, typeName(v))
}

// tags returns call-id, from-tag and to-tag.
func (r *request) tags() (callID, fromTag, toTag string, err error) {
	if callID, err = r.str("call-id"); err != nil {
		return
	}
	if callID == "" {
		// rtpengine's other spellings of call-id.
		for _, k := range []string{"call-ID", "call ID"} {
			if callID, err = r.str(k); err != nil || callID != "" {
				break
			}
		}
	}
	if err != nil {
		return
	}
	if fromTag, err = r.str("from-tag"); err != nil {
		return
	}
	toTag, err = r.str("to-tag")
	return
}

// params turns an offer's or answer's keys into calls.Params.
func (r *request) params() (calls.Params, error) {
	var p calls.Params
	var err error
	if p.CallID, p.FromTag, p.ToTag, err = r.tags(); err != nil {
		return p, err
	}
	sdp, err := r.str("sdp")
	if err != nil {
		return p, err
	}
	p.SDP = []byte(sdp)
	if p.Label, err = r.str("label"); err != nil {
		return p, err
	}

	flags, err := r.list("flags")
	if err != nil {
		return p, err
	}
	for _, f := range flags {
		switch f = strings.ToLower(f); {
		case f == "sip-source-address":
			p.SIPSourceAddress = true
		case f == "trust-address":
			p.SIPSourceAddress = false
		case f == "strict-source":
			p.StrictSource = true
		case f == "full-rtcp-attribute":
			p.FullRTCPAttribute = true
		case f == "no-rtcp-attribute":
			p.NoRTCPAttribute = true
		case f == "original-sendrecv":
			p.OriginalSendrecv = true
		case strings.HasPrefix(f, "endpoint-learning-"):
			if p.Learning, err = relay.ParseLearning(strings.TrimPrefix(f, "endpoint-learning-")); err != nil {
				return p, fmt.Errorf("flag %s: %v", f, err)
			}
			p.LearningSet = true
		}
	}
	learning, err := r.list("endpoint-learning")
	if err != nil {
		return p, err
	}
	if len(learning) > 0 {
		if p.Learning, err = relay.ParseLearning(learning[0]); err != nil {
			return p, fmt.Errorf("endpoint-learning: %v", err)
		}
		p.LearningSet = true
	}

	replace, err := r.list("replace")
	if err != nil {
		return p, err
	}
	for _, x := range replace {
		switch x {
		case "origin":
			p.ReplaceOrigin = true
		case "session-connection":
			p.ReplaceSessionConnection = true
		case "zero-address":
			p.ReplaceZeroAddress = true
		}
	}

	mux, err := r.list("rtcp-mux")
	if err != nil {
		return p, err
	}
	for _, x := range mux {
		switch x {
		case "offer":
			p.RTCPMux.Offer = true
		case "require":
			p.RTCPMux.Require = true
		case "demux":
			p.RTCPMux.Demux = true
		case "accept":
			p.RTCPMux.Accept = true
		case "reject":
			p.RTCPMux.Reject = true
		}
	}

	ice, err := r.str("ICE")
	if err != nil {
		return p, err
	}
	switch ice {
	case "", "remove", "default":
	default:
		// We are no ICE agent: every option strips ICE.
		r.warnings = append(r.warnings, fmt.Sprintf("ICE=%s is not supported; ICE attributes removed", ice))
	}

	fam, err := r.str("address family")
	if err != nil {
		return p, err
	}
	if p.Family, err = calls.ParseFamily(fam); err != nil {
		return p, err
	}
	if ma, err := r.str("media address"); err != nil {
		return p, err
	} else if ma != "" {
		if p.MediaAddress, err = netip.ParseAddr(ma); err != nil {
			return p, fmt.Errorf("media address %q is not an IP address", ma)
		}
	}
	from, err := r.list("received from")
	if err != nil {
		return p, err
	}
	if len(from) == 2 {
		if p.ReceivedFrom, err = netip.ParseAddr(from[1]); err != nil {
			return p, fmt.Errorf("received from %q is not an IP address", from[1])
		}
	} else if len(from) != 0 {
		return p, fmt.Errorf("received from must be [family, address], not %d items", len(from))
	}
	if dir, err := r.list("direction"); err != nil {
		return p, err
	} else if len(dir) > 2 {
		return p, fmt.Errorf("direction must name at most 2 interfaces, not %d", len(dir))
	}
	if p.TransportProtocol, err = r.str("transport protocol"); err != nil {
		return p, err
	}
	return p, nil
}
