package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// The control API's JSON shapes.
type (
	// CreateRequest is the body of POST /v1/relays.
	CreateRequest struct {
		// Ports are the relay's two local ports, A and B.
		Ports []int `json:"ports"`
		// Peers, optional, are "ip:port" for A and B; an empty string, or
		// no peers at all, latches that side from its first datagram.
		Peers []string `json:"peers,omitempty"`
	}

	// RelayJSON is a relay as the API shows it.
	RelayJSON struct {
		ID    string     `json:"id"`
		Ports [2]uint16  `json:"ports"`
		Peers [2]string  `json:"peers"` // "" while not latched
		Sides []SideJSON `json:"sides"`
	}

	// SideJSON is one side of a relay with its counters.
	SideJSON struct {
		Port uint16 `json:"port"`
		Peer string `json:"peer"`
		// Mode is "fixed" or "latch".
		Mode     string      `json:"mode"`
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

	// ListJSON is the body of GET /v1/relays.
	ListJSON struct {
		Relays []RelayJSON `json:"relays"`
	}

	// ErrorJSON is the body of every error response.
	ErrorJSON struct {
		Error string `json:"error"`
	}
)

// JSON returns the relay as the API shows it.
func (info Info) JSON() RelayJSON {
	j := RelayJSON{ID: info.ID, Ports: info.Ports}
	for i, sd := range info.Sides {
		s := SideJSON{
			Port:     sd.Port,
			Mode:     "latch",
			Received: PacketsJSON{sd.ReceivedPackets, sd.ReceivedBytes},
			Sent:     PacketsJSON{sd.SentPackets, sd.SentBytes},
			Dropped:  DroppedJSON{sd.NoPeer, sd.ForeignSource, sd.SendErrors},
		}
		if sd.Fixed {
			s.Mode = "fixed"
		}
		if sd.Peer.IsValid() {
			s.Peer = sd.Peer.String()
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
//	POST   /v1/relays       {"ports":[A,B], "peers":["ip:port","ip:port"]}  → 201, the relay
//	GET    /v1/relays       → 200, {"relays":[...]} with counters
//	GET    /v1/relays/{id}  → 200, the relay
//	DELETE /v1/relays/{id}  → 200, the relay's final state
//
// Errors are 4xx with {"error":"..."}: 400 for a malformed or invalid
// request or a port outside the range, 404 for an unknown relay or path,
// 405 for a wrong method, 409 for a port in use, 413 for a body over
// 64 KiB.
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
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q: the API is under /v1/relays", r.URL.Path))
	})
	return mux
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed here (allowed: %s)", r.Method, allow))
	}
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxRequestBody))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	spec, err := parseCreate(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rl, err := s.Create(spec)
	switch {
	case err == nil:
	case errors.Is(err, ErrInUse):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrRange):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Location", "/v1/relays/"+rl.ID())
	writeJSON(w, http.StatusCreated, rl.Info().JSON())
}

// parseCreate checks a POST /v1/relays body and says precisely what is
// wrong with a bad one.
func parseCreate(body []byte) (Spec, error) {
	var req CreateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Spec{}, fmt.Errorf("request body is not a relay: %v (want {\"ports\":[A,B]} with optional \"peers\":[\"ip:port\",\"ip:port\"])", err)
	}
	if dec.More() {
		return Spec{}, errors.New("request body has data after the JSON object")
	}
	var spec Spec
	if len(req.Ports) != 2 {
		return spec, fmt.Errorf("\"ports\" must list exactly 2 ports, got %d", len(req.Ports))
	}
	for i, p := range req.Ports {
		if p < 1 || p > 65535 {
			return spec, fmt.Errorf("ports[%d] %d is not a UDP port (1-65535)", i, p)
		}
		spec.Ports[i] = uint16(p)
	}
	switch len(req.Peers) {
	case 0:
	case 2:
		for i, p := range req.Peers {
			if p == "" {
				continue
			}
			ap, err := parsePeer(p)
			if err != nil {
				return spec, fmt.Errorf("peers[%d] %w", i, err)
			}
			spec.Peers[i] = ap
		}
	default:
		return spec, fmt.Errorf("\"peers\" must list 2 peers (\"\" to latch a side), got %d", len(req.Peers))
	}
	return spec, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorJSON{Error: msg})
}
