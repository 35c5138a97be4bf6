package controlhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// The JSON conventions the control APIs share (relay's /v1/relays, p2sp's
// /v1/p2sp/fetches): indented JSON bodies, every error as {"error": "..."},
// 405 with an Allow header, a bounded request body.

// WriteJSON answers with code and v as indented JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers with code and {"error": msg}.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

// MethodNotAllowed is the handler for a path's other methods: 405, the
// Allow header, an error naming the methods allowed.
func MethodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed here (allowed: %s)", r.Method, allow))
	}
}

// ReadBody reads a request body of at most limit bytes, or answers 413 (too
// long) or 400 and returns false.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", limit))
			return nil, false
		}
		WriteError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return nil, false
	}
	return body, true
}
