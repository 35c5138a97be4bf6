package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/mediastack/mediastack/internal/controlhttp"
)

// The control API's JSON shapes. Names are snake_case; label values of the
// metrics are spelled the same (no_peer, foreign_source, ...).
type (
	// CreateRequest is the body of POST /v1/relays.
	CreateRequest struct {
		// Ports are the relay's two local RTP ports, A and B; without
		// them the service allocates an even/odd pair for each side.
		Ports []int `json:"ports,omitempty"`
		// Peers, optional, are "ip:port" for A and B (from SDP); an empty
		// string, or no peers at all, latches that side from its first
		// datagram.
		Peers []string `json:"peers,omitempty"`
		// RTCP relays RTCP too, on each RTP port + 1.
		RTCP bool `json:"rtcp,omitempty"`
		// RTCPMux, optional, says for A and B whether the peer
		// multiplexes RTCP on the RTP port.
		RTCPMux []bool `json:"rtcp_mux,omitempty"`
		// RTCPPeers, optional, are the RTCP peers ("" = the RTP peer's
		// port + 1, or the RTP peer with rtcp_mux).
		RTCPPeers []string `json:"rtcp_peers,omitempty"`
		// Learning is "delayed", "immediate", "heuristic" or "off";
		// omitted: the service's default.
		Learning string `json:"learning,omitempty"`
		// StrictSource, omitted: the service's default.
		StrictSource *bool  `json:"strict_source,omitempty"`
		Label        string `json:"label,omitempty"`
	}

	// PeerRequest is the body of PUT /v1/relays/{id}/peers/{side}.
	PeerRequest struct {
		Peer     string `json:"peer"`
		RTCPPeer string `json:"rtcp_peer,omitempty"`
		RTCPMux  bool   `json:"rtcp_mux,omitempty"`
	}

	// RelayJSON is a relay as the API shows it.
	RelayJSON struct {
		ID           string     `json:"id"`
		Label        string     `json:"label,omitempty"`
		Ports        [2]uint16  `json:"ports"`
		Peers        [2]string  `json:"peers"` // "" while unknown
		RTCP         bool       `json:"rtcp,omitempty"`
		Learning     string     `json:"learning,omitempty"`
		StrictSource bool       `json:"strict_source,omitempty"`
		Permanent    bool       `json:"permanent,omitempty"`
		Created      *time.Time `json:"created,omitempty"`
		Sides        []SideJSON `json:"sides"`
	}

	// SideJSON is one side of a relay with its counters.
	SideJSON struct {
		Port uint16 `json:"port"`
		Peer string `json:"peer"`
		// Mode is "fixed" (the peer came from signalling) or "latch".
		Mode string `json:"mode"`
		// State is "unknown", "expected" or "learned".
		State    string `json:"state,omitempty"`
		Expected string `json:"expected,omitempty"`
		// Received, Sent and Dropped count RTP (what is not RTCP).
		Received PacketsJSON `json:"received"`
		Sent     PacketsJSON `json:"sent"`
		Dropped  DroppedJSON `json:"dropped"`
		// RTCPPort is 0 without RTCP.
		RTCPPort   uint16      `json:"rtcp_port,omitempty"`
		RTCPPeer   string      `json:"rtcp_peer,omitempty"`
		RTCPMux    bool        `json:"rtcp_mux,omitempty"`
		Silent     bool        `json:"silent,omitempty"`
		RTCP       *MediaJSON  `json:"rtcp,omitempty"`
		LastPacket *time.Time  `json:"last_packet,omitempty"`
		Stream     *StreamJSON `json:"stream,omitempty"`
		Report     *ReportJSON `json:"report,omitempty"`
		// StatsSkipped counts datagrams relayed but left out of stream
		// and report (they met the API reading them).
		StatsSkipped uint64 `json:"stats_skipped,omitempty"`
	}

	// MediaJSON counts one kind of media of a side.
	MediaJSON struct {
		Received PacketsJSON `json:"received"`
		Sent     PacketsJSON `json:"sent"`
		Dropped  DroppedJSON `json:"dropped"`
	}

	// PacketsJSON counts packets and bytes.
	PacketsJSON struct {
		Packets uint64 `json:"packets"`
		Bytes   uint64 `json:"bytes"`
	}

	// DroppedJSON counts the datagrams a side dropped, by reason.
	DroppedJSON struct {
		NoPeer        uint64 `json:"no_peer"`
		ForeignSource uint64 `json:"foreign_source"`
		SendError     uint64 `json:"send_error"`
	}

	// StreamJSON is the RTP stream a side's peer sends (RFC 3550 A.3, A.8).
	StreamJSON struct {
		SSRC        uint32  `json:"ssrc"`
		PayloadType uint8   `json:"payload_type"`
		ClockRate   uint32  `json:"clock_rate"` // 0: unknown, so no jitter
		HighestSeq  uint32  `json:"highest_seq"`
		Expected    int64   `json:"expected"`
		Received    uint64  `json:"received"`
		Lost        int64   `json:"lost"`
		LossRatio   float64 `json:"loss_ratio"`
		JitterMS    float64 `json:"jitter_ms"`
		Restarts    uint64  `json:"restarts,omitempty"`
	}

	// ReportJSON is what a side's peer reports in RTCP.
	ReportJSON struct {
		SenderReports   uint64     `json:"sender_reports"`
		ReceiverReports uint64     `json:"receiver_reports"`
		Malformed       uint64     `json:"malformed,omitempty"`
		SSRC            uint32     `json:"ssrc"`
		Source          uint32     `json:"source,omitempty"`
		At              *time.Time `json:"at,omitempty"`
		FractionLost    float64    `json:"fraction_lost"`
		CumulativeLost  int32      `json:"cumulative_lost"`
		JitterMS        float64    `json:"jitter_ms"`
		RTTMS           float64    `json:"rtt_ms,omitempty"`
	}

	// ListJSON is the body of GET /v1/relays.
	ListJSON struct {
		Relays []RelayJSON `json:"relays"`
	}

	// ErrorJSON is the body of every error response.
	ErrorJSON struct {
		Error string `json:"error"`
	}
)

func timeJSON(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func droppedJSON(c Counters) DroppedJSON { return DroppedJSON{c.NoPeer, c.ForeignSource, c.SendErrors} }

// JSON returns the relay as the API shows it.
func (info Info) JSON() RelayJSON {
	j := RelayJSON{ID: info.ID, Label: info.Label, Ports: info.Ports, RTCP: info.RTCP, StrictSource: info.StrictSource,
		Permanent: info.Permanent, Created: timeJSON(info.Created)}
	if info.Learning != LearnDelayed {
		j.Learning = info.Learning.String()
	}
	for i, sd := range info.Sides {
		s := SideJSON{
			Port:         sd.Port,
			Mode:         "latch",
			State:        sd.State.String(),
			Received:     PacketsJSON{sd.ReceivedPackets, sd.ReceivedBytes},
			Sent:         PacketsJSON{sd.SentPackets, sd.SentBytes},
			Dropped:      droppedJSON(sd.Counters),
			RTCPPort:     sd.RTCPPort,
			RTCPPeer:     addrString(sd.RTCPPeer),
			RTCPMux:      sd.Mux,
			Silent:       sd.Silent,
			LastPacket:   timeJSON(sd.LastPacket),
			Expected:     addrString(sd.Expected),
			StatsSkipped: sd.StatsSkipped,
		}
		if sd.Fixed {
			s.Mode = "fixed"
		}
		s.Peer = addrString(sd.Peer)
		if sd.RTCP != (Counters{}) || sd.RTCPPort != 0 || sd.Mux {
			s.RTCP = &MediaJSON{
				Received: PacketsJSON{sd.RTCP.ReceivedPackets, sd.RTCP.ReceivedBytes},
				Sent:     PacketsJSON{sd.RTCP.SentPackets, sd.RTCP.SentBytes},
				Dropped:  droppedJSON(sd.RTCP),
			}
		}
		if st := sd.Stream; st.SSRC != 0 || st.Received != 0 {
			s.Stream = &StreamJSON{
				SSRC: st.SSRC, PayloadType: st.PayloadType, ClockRate: st.ClockRate, HighestSeq: st.HighestSeq,
				Expected: st.Expected, Received: st.Received, Lost: st.Lost, LossRatio: st.LossRatio(),
				JitterMS: ms(st.Jitter), Restarts: st.Restarts,
			}
		}
		if rp := sd.Report; rp.SenderReports+rp.ReceiverReports+rp.Malformed != 0 {
			s.Report = &ReportJSON{
				SenderReports: rp.SenderReports, ReceiverReports: rp.ReceiverReports, Malformed: rp.Malformed,
				SSRC: rp.SSRC, Source: rp.Source, At: timeJSON(rp.At), FractionLost: rp.FractionLost,
				CumulativeLost: rp.CumulativeLost, JitterMS: ms(rp.Jitter), RTTMS: ms(rp.RTT),
			}
		}
		j.Peers[i] = s.Peer
		j.Sides = append(j.Sides, s)
	}
	return j
}

// maxRequestBody bounds a request body; a relay request is a few dozen bytes.
const maxRequestBody = 64 << 10

// Handler returns the control API:
//
//	POST   /v1/relays       {"ports":[A,B], "peers":["ip:port","ip:port"], "rtcp":true,
//	                         "rtcp_mux":[false,true], "rtcp_peers":["",""], "learning":"delayed",
//	                         "strict_source":false, "label":"..."}  → 201, the relay
//	                        (every key optional; without "ports", a pair is allocated per side)
//	GET    /v1/relays       → 200, {"relays":[...]} with counters and statistics
//	GET    /v1/relays/{id}  → 200, the relay
//	PUT    /v1/relays/{id}/peers/{side}  {"peer":"ip:port", "rtcp_peer":"ip:port", "rtcp_mux":false}
//	                        → 200, the relay (side: 0 or a, 1 or b)
//	DELETE /v1/relays/{id}  → 200, the relay's final state
//
// Errors are 4xx with {"error":"..."}: 400 for a malformed or invalid
// request or a port outside the range, 404 for an unknown relay or path,
// 405 for a wrong method, 409 for a port in use, 413 for a body over
// 64 KiB, 503 when no port pair is free.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/relays", s.handleCreate)
	mux.HandleFunc("GET /v1/relays", func(w http.ResponseWriter, r *http.Request) {
		list := ListJSON{Relays: []RelayJSON{}}
		for _, info := range s.List() {
			list.Relays = append(list.Relays, info.JSON())
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /v1/relays/{id}", func(w http.ResponseWriter, r *http.Request) {
		info, ok := s.Get(r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no relay %q", r.PathValue("id")))
			return
		}
		writeJSON(w, http.StatusOK, info.JSON())
	})
	mux.HandleFunc("PUT /v1/relays/{id}/peers/{side}", s.handleSetPeer)
	mux.HandleFunc("DELETE /v1/relays/{id}", func(w http.ResponseWriter, r *http.Request) {
		info, err := s.Delete(r.PathValue("id"))
		if err != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no relay %q", r.PathValue("id")))
			return
		}
		writeJSON(w, http.StatusOK, info.JSON())
	})
	// Without a method, these patterns get what the ones above do not.
	mux.HandleFunc("/v1/relays", methodNotAllowed("GET, POST"))
	mux.HandleFunc("/v1/relays/{id}", methodNotAllowed("GET, DELETE"))
	mux.HandleFunc("/v1/relays/{id}/peers/{side}", methodNotAllowed("PUT"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q: the API is under /v1/relays", r.URL.Path))
	})
	return mux
}

// The control APIs' shared JSON conventions (internal/controlhttp).
var (
	methodNotAllowed = controlhttp.MethodNotAllowed
	writeJSON        = controlhttp.WriteJSON
	writeError       = controlhttp.WriteError
)

// readBody reads a request body of at most maxRequestBody bytes, or writes
// the error response and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	return controlhttp.ReadBody(w, r, maxRequestBody)
}

// writeServiceError answers an error of Create or SetPeer.
func writeServiceError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInUse):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrRange):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrClosed), errors.Is(err, ErrExhausted):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	spec, err := parseCreate(body, s.opts.Learning, s.opts.StrictSource)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rl, err := s.Create(spec)
	if err != nil {
		writeServiceError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/relays/"+rl.ID())
	writeJSON(w, http.StatusCreated, rl.Info().JSON())
}

func (s *Service) handleSetPeer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	side := -1
	switch r.PathValue("side") {
	case "0", "a", "A":
		side = 0
	case "1", "b", "B":
		side = 1
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no side %q: a relay has sides 0 (a) and 1 (b)", r.PathValue("side")))
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req PeerRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("request body is not a peer: %v (want {\"peer\":\"ip:port\"} with optional \"rtcp_peer\" and \"rtcp_mux\")", err))
		return
	}
	var peers [2]netip.AddrPort
	for i, p := range []struct{ name, text string }{{"peer", req.Peer}, {"rtcp_peer", req.RTCPPeer}} {
		if p.text == "" {
			continue
		}
		ap, err := parsePeer(p.text)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %v", p.name, err))
			return
		}
		peers[i] = ap
	}
	if err := s.SetPeer(id, side, peers[0], peers[1], req.RTCPMux); err != nil {
		writeServiceError(w, err)
		return
	}
	info, ok := s.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no relay %q", id))
		return
	}
	writeJSON(w, http.StatusOK, info.JSON())
}

// decodeStrict decodes one JSON object with no unknown fields and
// nothing after it.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// parseCreate checks a POST /v1/relays body and says precisely what is
// wrong with a bad one; learning and strict are the defaults for a body
// that does not say.
func parseCreate(body []byte, learning Learning, strict bool) (Spec, error) {
	var req CreateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Spec{}, fmt.Errorf("request body is not a relay: %v (want {\"ports\":[A,B]} with optional \"peers\":[\"ip:port\",\"ip:port\"], \"rtcp\", \"rtcp_mux\", \"rtcp_peers\", \"learning\", \"strict_source\", \"label\")", err)
	}
	if dec.More() {
		return Spec{}, errors.New("request body has data after the JSON object")
	}
	spec := Spec{RTCP: req.RTCP, Learning: learning, StrictSource: strict, Label: req.Label}
	switch len(req.Ports) {
	case 0:
	case 2:
		for i, p := range req.Ports {
			if p < 1 || p > 65535 {
				return spec, fmt.Errorf("ports[%d] %d is not a UDP port (1-65535)", i, p)
			}
			spec.Ports[i] = uint16(p)
		}
	default:
		return spec, fmt.Errorf("\"ports\" must list exactly 2 ports, got %d (or none, to allocate them)", len(req.Ports))
	}
	for _, list := range []struct {
		name  string
		in    []string
		out   *[2]netip.AddrPort
		blank string
	}{{"peers", req.Peers, &spec.Peers, "\"\" to latch a side"}, {"rtcp_peers", req.RTCPPeers, &spec.RTCPPeers, "\"\" for the default"}} {
		switch len(list.in) {
		case 0:
		case 2:
			for i, p := range list.in {
				if p == "" {
					continue
				}
				ap, err := parsePeer(p)
				if err != nil {
					return spec, fmt.Errorf("%s[%d] %w", list.name, i, err)
				}
				list.out[i] = ap
			}
		default:
			return spec, fmt.Errorf("%q must list 2 peers (%s), got %d", list.name, list.blank, len(list.in))
		}
	}
	switch len(req.RTCPMux) {
	case 0:
	case 2:
		spec.Mux = [2]bool(req.RTCPMux)
	default:
		return spec, fmt.Errorf("\"rtcp_mux\" must list 2 booleans, got %d", len(req.RTCPMux))
	}
	if req.Learning != "" {
		l, err := ParseLearning(req.Learning)
		if err != nil {
			return spec, fmt.Errorf("\"learning\": %q is not one of delayed, immediate, heuristic, off", req.Learning)
		}
		spec.Learning = l
	}
	if req.StrictSource != nil {
		spec.StrictSource = *req.StrictSource
	}
	return spec, nil
}
