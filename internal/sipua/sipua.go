// Package sipua is a SIP user agent for tests: the two phones of a call
// that a SIP proxy (Kamailio, driving a media relay over rtpengine's ng
// protocol) puts through, over UDP (RFC 3261).
//
// It does exactly one call flow, deterministically: the caller sends an
// INVITE with an SDP offer through the proxy (Call), the callee answers it
// with 200 OK and an SDP answer (Answer), the caller ACKs, and later hangs
// up with BYE (Dialog.Bye), which the callee answers (Dialog.AwaitBye).
// Record-Route is honoured, so in-dialog requests go through the proxy.
// There are no retransmissions: a test network inside a namespace loses
// nothing, and every wait has the caller's deadline. ParseMedia reads the
// addresses and ports an SDP (the relay's rewritten one) asks media to go
// to.
//
// Plug it in with a UDP socket per phone:
//
//	caller := sipua.New(callerConn, proxyAddr, "alice")
//	callee := sipua.New(calleeConn, proxyAddr, "bob")
//	go func() { d, err := callee.Answer(ctx, answerSDP) ... }()
//	d, err := caller.Call(ctx, "sip:bob@"+calleeAddr.String(), offerSDP)
package sipua

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// UA is a SIP user agent on one UDP socket. It is not safe for concurrent
// use: one call at a time, from one goroutine.
type UA struct {
	conn  *net.UDPConn
	local netip.AddrPort
	proxy netip.AddrPort
	user  string
	buf   []byte
}

// New returns a UA that sends its requests to proxy from conn, as user
// (the user part of its From and Contact URIs).
func New(conn *net.UDPConn, proxy netip.AddrPort, user string) *UA {
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return &UA{conn: conn, local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), proxy: proxy, user: user, buf: make([]byte, 65535)}
}

// Dialog is an established call.
type Dialog struct {
	ua                  *UA
	callID              string
	localTag, remoteTag string
	from, to            string // From and To of the requests this side sends
	remoteTarget        string // the peer's Contact URI
	routes              []string
	cseq                uint32
	LocalSDP, RemoteSDP []byte
	Invite, FinalAnswer *Message // the INVITE and the 200 OK as this side saw them
}

// CallID returns the dialog's Call-ID.
func (d *Dialog) CallID() string { return d.callID }

// FromTag returns the caller's tag (the From tag of the INVITE), which the
// relay files the call's offering side under.
func (d *Dialog) FromTag() string {
	if d.Invite != nil {
		return param(d.Invite.Get("From"), "tag")
	}
	return d.localTag
}

func randomToken() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (ua *UA) uri() string { return fmt.Sprintf("sip:%s@%s", ua.user, ua.local) }

func (ua *UA) via() string {
	return fmt.Sprintf("SIP/2.0/UDP %s;branch=z9hG4bK%s;rport", ua.local, randomToken())
}

func (ua *UA) send(m *Message, to netip.AddrPort) error {
	_, err := ua.conn.WriteToUDPAddrPort(m.Marshal(), to)
	return err
}

// receive returns the next message that match accepts; it discards others.
func (ua *UA) receive(ctx context.Context, what string, match func(*Message) bool) (*Message, netip.AddrPort, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute) // a hang guard
	}
	if err := ua.conn.SetReadDeadline(deadline); err != nil {
		return nil, netip.AddrPort{}, err
	}
	var seen []string
	for {
		n, from, err := ua.conn.ReadFromUDPAddrPort(ua.buf)
		if err != nil {
			return nil, from, fmt.Errorf("%s (%s) waiting for %s, after %q: %w", ua.user, ua.local, what, seen, err)
		}
		m, err := Parse(ua.buf[:n])
		if err != nil {
			seen = append(seen, err.Error())
			continue
		}
		if match(m) {
			return m, from, nil
		}
		seen = append(seen, startLine(m))
	}
}

func startLine(m *Message) string {
	if m.Method != "" {
		return m.Method + " " + m.URI
	}
	return fmt.Sprintf("%d %s", m.Status, m.Reason)
}

// Call sends an INVITE with the SDP offer to target (a SIP URI) through
// the proxy, waits for the final answer and ACKs it. A final answer other
// than 2xx is an error (it is ACKed too).
func (ua *UA) Call(ctx context.Context, target string, offer []byte) (*Dialog, error) {
	d := &Dialog{ua: ua, callID: randomToken() + "@" + ua.local.Addr().String(), localTag: randomToken(), cseq: 1, LocalSDP: offer}
	d.from = fmt.Sprintf("<%s>;tag=%s", ua.uri(), d.localTag)
	inv := &Message{Method: "INVITE", URI: target, Body: offer}
	inv.Add("Via", ua.via())
	inv.Add("Max-Forwards", "70")
	inv.Add("From", d.from)
	inv.Add("To", "<"+target+">")
	inv.Add("Call-ID", d.callID)
	inv.Add("CSeq", "1 INVITE")
	inv.Add("Contact", "<"+ua.uri()+">")
	inv.Add("Content-Type", "application/sdp")
	d.Invite = inv
	if err := ua.send(inv, ua.proxy); err != nil {
		return nil, err
	}
	for {
		resp, _, err := ua.receive(ctx, "an answer to the INVITE", func(m *Message) bool {
			_, method := m.CSeq()
			return m.Status != 0 && m.Get("Call-ID") == d.callID && method == "INVITE"
		})
		if err != nil {
			return nil, err
		}
		if resp.Status < 200 {
			continue
		}
		d.to = resp.Get("To")
		d.remoteTag = param(d.to, "tag")
		if resp.Status >= 300 {
			// The ACK of a failure is part of the INVITE transaction: same branch.
			ack := &Message{Method: "ACK", URI: target}
			ack.Add("Via", inv.Get("Via"))
			ack.Add("Max-Forwards", "70")
			ack.Add("From", d.from)
			ack.Add("To", d.to)
			ack.Add("Call-ID", d.callID)
			ack.Add("CSeq", "1 ACK")
			ua.send(ack, ua.proxy)
			return nil, fmt.Errorf("INVITE to %s: %d %s", target, resp.Status, resp.Reason)
		}
		d.FinalAnswer, d.RemoteSDP = resp, resp.Body
		d.remoteTarget = uriOf(resp.Get("Contact"))
		for _, rr := range resp.GetAll("Record-Route") {
			d.routes = append(d.routes, splitList(rr)...)
		}
		slices.Reverse(d.routes) // the caller's route set is the Record-Route list reversed
		return d, ua.send(d.request("ACK", 1), ua.proxy)
	}
}

// splitList splits a header value holding a comma-separated list of
// name-addrs (Record-Route: <sip:a;lr>, <sip:b;lr>).
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// request builds an in-dialog request.
func (d *Dialog) request(method string, cseq uint32) *Message {
	m := &Message{Method: method, URI: d.remoteTarget}
	m.Add("Via", d.ua.via())
	m.Add("Max-Forwards", "70")
	for _, r := range d.routes {
		m.Add("Route", r)
	}
	m.Add("From", d.from)
	m.Add("To", d.to)
	m.Add("Call-ID", d.callID)
	m.Add("CSeq", fmt.Sprintf("%d %s", cseq, method))
	return m
}

// Bye hangs up: it sends BYE through the proxy and waits for its 2xx.
func (d *Dialog) Bye(ctx context.Context) error {
	d.cseq++
	bye := d.request("BYE", d.cseq)
	if err := d.ua.send(bye, d.ua.proxy); err != nil {
		return err
	}
	for {
		resp, _, err := d.ua.receive(ctx, "an answer to the BYE", func(m *Message) bool {
			n, method := m.CSeq()
			return m.Status != 0 && m.Get("Call-ID") == d.callID && method == "BYE" && n == d.cseq
		})
		if err != nil {
			return err
		}
		if resp.Status >= 300 {
			return fmt.Errorf("BYE: %d %s", resp.Status, resp.Reason)
		}
		if resp.Status >= 200 {
			return nil
		}
	}
}

// Answer waits for an INVITE, answers it with 200 OK carrying the SDP that
// answer returns for the INVITE's offer, and waits for the ACK.
func (ua *UA) Answer(ctx context.Context, answer func(offer []byte) ([]byte, error)) (*Dialog, error) {
	inv, from, err := ua.receive(ctx, "an INVITE", func(m *Message) bool { return m.Method == "INVITE" })
	if err != nil {
		return nil, err
	}
	d := &Dialog{ua: ua, callID: inv.Get("Call-ID"), localTag: randomToken(), Invite: inv, RemoteSDP: inv.Body}
	d.remoteTag = param(inv.Get("From"), "tag")
	// The callee's requests swap From and To.
	d.from, d.to = inv.Get("To")+";tag="+d.localTag, inv.Get("From")
	d.remoteTarget = uriOf(inv.Get("Contact"))
	for _, rr := range inv.GetAll("Record-Route") {
		d.routes = append(d.routes, splitList(rr)...)
	}
	sdp, err := answer(inv.Body)
	if err != nil {
		ua.send(response(inv, 488, "Not Acceptable Here", d.localTag), from)
		return nil, err
	}
	ok := response(inv, 200, "OK", d.localTag)
	for _, rr := range inv.GetAll("Record-Route") {
		ok.Add("Record-Route", rr)
	}
	ok.Add("Contact", "<"+ua.uri()+">")
	ok.Add("Content-Type", "application/sdp")
	ok.Body = sdp
	d.LocalSDP, d.FinalAnswer = sdp, ok
	if err := ua.send(ok, from); err != nil {
		return nil, err
	}
	if _, _, err := ua.receive(ctx, "the ACK of the 200 OK", func(m *Message) bool {
		return m.Method == "ACK" && m.Get("Call-ID") == d.callID
	}); err != nil {
		return nil, err
	}
	return d, nil
}

// response builds a response to req, adding toTag to its To.
func response(req *Message, status int, reason, toTag string) *Message {
	m := &Message{Status: status, Reason: reason}
	for _, v := range req.GetAll("Via") {
		m.Add("Via", v)
	}
	m.Add("From", req.Get("From"))
	to := req.Get("To")
	if param(to, "tag") == "" && toTag != "" {
		to += ";tag=" + toTag
	}
	m.Add("To", to)
	m.Add("Call-ID", req.Get("Call-ID"))
	m.Add("CSeq", req.Get("CSeq"))
	return m
}

// AwaitBye waits for the peer's BYE and answers it with 200 OK.
func (d *Dialog) AwaitBye(ctx context.Context) error {
	bye, from, err := d.ua.receive(ctx, "a BYE", func(m *Message) bool {
		return m.Method == "BYE" && m.Get("Call-ID") == d.callID
	})
	if err != nil {
		return err
	}
	return d.ua.send(response(bye, 200, "OK", ""), from)
}

// ErrNoMedia is returned by ParseMedia for an SDP without an m= line.
var ErrNoMedia = errors.New("sdp: no media")
