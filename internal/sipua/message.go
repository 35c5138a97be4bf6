package sipua

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Message is a SIP request (Method set) or response (Status set).
type Message struct {
	Method, URI string // a request's start line
	Status      int    // a response's start line
	Reason      string
	Headers     []Header // in order; names as received
	Body        []byte
}

// Header is one header field.
type Header struct{ Name, Value string }

// compactNames maps RFC 3261 compact header names to the full ones.
var compactNames = map[string]string{
	"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact",
	"l": "Content-Length", "c": "Content-Type", "k": "Supported", "s": "Subject",
}

// canonical returns the full name of a header, for comparisons.
func canonical(name string) string {
	if full, ok := compactNames[strings.ToLower(name)]; ok {
		return full
	}
	return name
}

// Get returns the first value of the header name (compact forms match too),
// or "".
func (m *Message) Get(name string) string {
	if v := m.GetAll(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// GetAll returns every value of the header name, in order; a field with
// comma-separated values counts as one.
func (m *Message) GetAll(name string) []string {
	var vs []string
	for _, h := range m.Headers {
		if strings.EqualFold(canonical(h.Name), name) {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// Add appends a header.
func (m *Message) Add(name, value string) { m.Headers = append(m.Headers, Header{name, value}) }

// CSeq returns the message's CSeq number and method.
func (m *Message) CSeq() (uint32, string) {
	num, method, _ := strings.Cut(strings.TrimSpace(m.Get("CSeq")), " ")
	n, _ := strconv.ParseUint(num, 10, 32)
	return uint32(n), strings.TrimSpace(method)
}

// Marshal returns the message on the wire, with a Content-Length computed
// from the body (any Content-Length header is replaced).
func (m *Message) Marshal() []byte {
	var b bytes.Buffer
	if m.Method != "" {
		fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", m.Method, m.URI)
	} else {
		fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", m.Status, m.Reason)
	}
	for _, h := range m.Headers {
		if canonical(h.Name) == "Content-Length" {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h.Name, h.Value)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(m.Body))
	b.Write(m.Body)
	return b.Bytes()
}

// Parse reads one SIP message from a datagram.
func Parse(b []byte) (*Message, error) {
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return nil, errors.New("sip: no blank line after the headers")
	}
	lines := strings.Split(string(head), "\r\n")
	m := new(Message)
	start := strings.SplitN(lines[0], " ", 3)
	if len(start) != 3 {
		return nil, fmt.Errorf("sip: start line %q", lines[0])
	}
	if start[0] == "SIP/2.0" {
		status, err := strconv.Atoi(start[1])
		if err != nil {
			return nil, fmt.Errorf("sip: status line %q", lines[0])
		}
		m.Status, m.Reason = status, start[2]
	} else {
		if start[2] != "SIP/2.0" {
			return nil, fmt.Errorf("sip: request line %q", lines[0])
		}
		m.Method, m.URI = start[0], start[1]
	}
	for _, line := range lines[1:] {
		if line != "" && (line[0] == ' ' || line[0] == '\t') && len(m.Headers) > 0 { // folded
			m.Headers[len(m.Headers)-1].Value += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("sip: header line %q", line)
		}
		m.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if cl := m.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n > len(body) {
			return nil, fmt.Errorf("sip: Content-Length %q for a body of %d bytes", cl, len(body))
		}
		body = body[:n]
	}
	m.Body = body
	return m, nil
}

// param returns the value of ;name=value in a header value such as a Via or
// a To, or "".
func param(value, name string) string {
	for _, p := range strings.Split(value, ";")[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// uriOf returns the URI inside <...> of a name-addr, or the value itself up
// to its parameters.
func uriOf(value string) string {
	if i := strings.IndexByte(value, '<'); i >= 0 {
		if j := strings.IndexByte(value[i:], '>'); j > 0 {
			return value[i+1 : i+j]
		}
	}
	uri, _, _ := strings.Cut(value, ";")
	return strings.TrimSpace(uri)
}
