// Package rtpenginetest runs the real rtpengine (Debian's rtpengine-daemon,
// in userspace mode) and Debian's rtpengine-ng-client inside a test's
// network namespace: the yardstick for mediastack's ng protocol server, and
// a client of it that nobody here wrote.
//
// Start runs the daemon on an ng address and media addresses of the test's
// choosing (docs/research/rtpengine-ng.md, section 5, says why each
// option). Client runs rtpengine-ng-client against any ng port, ours or
// rtpengine's, and reads back what it printed: the SDP before and after,
// and the reply dictionary. NormalizeSDP makes two relays' SDPs comparable.
//
//	rtpe := rtpenginetest.Start(t, ns, rtpenginetest.Options{NG: ngAddr, Interfaces: addrs})
//	r, err := rtpe.Client().Offer("call-1", "tag-a", sdp, "--replace-origin")
package rtpenginetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/internal/rtpengine"
)

// Options say where rtpengine listens; Start fills in PidFile.
type Options = rtpengine.Options

// Daemon is a running rtpengine.
type Daemon struct {
	NG  netip.AddrPort
	ns  *netnstest.Namespace
	log *netnstest.Process
}

// Start runs rtpengine in ns (userspace forwarding only: --table=-1; no
// config file; deleted calls freed at once: --delete-delay=0) and waits
// until its ng port answers a ping. It is stopped when the test ends, and
// its log goes into the test's log if the test failed.
func Start(t testing.TB, ns *netnstest.Namespace, o Options) *Daemon {
	t.Helper()
	netnstest.RequireTools(t, "rtpengine", "rtpengine-ng-client")
	o.PidFile = filepath.Join(t.TempDir(), "rtpengine.pid")
	args := rtpengine.Args(o)
	d := &Daemon{NG: o.NG, ns: ns, log: ns.Start(args...)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rtpengine's log:\n%s", d.log.Output())
		}
	})
	WaitPing(t, d.Client(), func() string { return d.log.Output() })
	return d
}

// Client returns an rtpengine-ng-client for the daemon.
func (d *Daemon) Client() *Client { return &Client{NS: d.ns, NG: d.NG} }

// WaitPing waits until the ng port of c answers ping with pong; log, if not
// nil, says what the server said, for the failure message.
func WaitPing(t testing.TB, c *Client, log func() string) {
	t.Helper()
	netnstest.WaitFor(t, netnstest.StateTimeout, "the ng port "+c.NG.String()+" answering ping", func() error {
		r, err := c.Run("ping")
		if err == nil && r.Dict["result"] == "pong" {
			return nil
		}
		if log != nil {
			return fmt.Errorf("%v %v (server's log: %s): %w", r.Dict, err, log(), netnstest.ErrNotYet)
		}
		return fmt.Errorf("%v %v: %w", r.Dict, err, netnstest.ErrNotYet)
	})
}

// Client runs Debian's rtpengine-ng-client in NS against the ng port NG.
type Client struct {
	NS *netnstest.Namespace
	NG netip.AddrPort
}

// Reply is what rtpengine-ng-client printed.
type Reply struct {
	OldSDP, NewSDP string         // the SDP sent and the one answered (offer, answer)
	Dict           map[string]any // the rest of the reply (the client drops "result":"ok")
	Output         string         // all of it
}

// ErrorReply is the error of a command answered with result "error".
type ErrorReply struct{ Reason string }

func (e *ErrorReply) Error() string { return fmt.Sprintf("ng error %q", e.Reason) }

// commandTimeout bounds one client run: the client waits for a reply
// without a timeout of its own. A hang guard, not a timing assertion.
const commandTimeout = 30 * time.Second

// Run runs `rtpengine-ng-client COMMAND ARGS...` (options as the client
// takes them: --call-id=..., --sdp=..., --flags=...). A reply with result
// "error" gives an *ErrorReply.
func (c *Client) Run(command string, args ...string) (Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	host := c.NG.Addr().String()
	argv := append([]string{"rtpengine-ng-client", "--proxy-address=" + host, "--proxy-port=" + strconv.Itoa(int(c.NG.Port())), command}, args...)
	out, err := c.NS.Command(ctx, argv...).CombinedOutput()
	r := Reply{Output: string(out)}
	if err != nil {
		if i := strings.Index(r.Output, `Error reason: "`); i >= 0 {
			reason, _, _ := strings.Cut(r.Output[i+len(`Error reason: "`):], `"`)
			return r, &ErrorReply{Reason: reason}
		}
		return r, fmt.Errorf("rtpengine-ng-client %s: %w: %s", command, err, out)
	}
	r.OldSDP = block(r.Output, "Old SDP:")
	r.NewSDP = block(r.Output, "New SDP:")
	r.Dict = map[string]any{}
	if d := block(r.Output, "Result dictionary:"); d != "" {
		v, err := parseDumper(d)
		if err != nil {
			return r, fmt.Errorf("reading rtpengine-ng-client's output: %w\n%s", err, out)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return r, fmt.Errorf("rtpengine-ng-client printed %T, not a dictionary: %s", v, out)
		}
		r.Dict = m
	}
	return r, nil
}

// block returns the text the client printed between the scissors lines
// under title, without the newline it adds.
func block(out, title string) string {
	const open, close = "-----8<-----8<-----8<-----8<-----8<-----\n", "\n----->8----->8----->8----->8----->8-----"
	_, rest, ok := strings.Cut(out, title+"\n"+open)
	if !ok {
		return ""
	}
	body, _, _ := strings.Cut(rest, close)
	return body
}

// Offer sends an offer for the call with the caller's SDP; extra are more
// client options (--replace-origin, --ICE=remove, --rtcp-mux=offer...).
func (c *Client) Offer(callID, fromTag, sdp string, extra ...string) (Reply, error) {
	return c.Run("offer", append([]string{"--call-id=" + callID, "--from-tag=" + fromTag, "--sdp=" + sdp}, extra...)...)
}

// Answer sends the callee's answer: fromTag is the caller's, as in the
// offer; toTag the callee's.
func (c *Client) Answer(callID, fromTag, toTag, sdp string, extra ...string) (Reply, error) {
	return c.Run("answer", append([]string{"--call-id=" + callID, "--from-tag=" + fromTag, "--to-tag=" + toTag, "--sdp=" + sdp}, extra...)...)
}

// Query asks for the call's state and counters.
func (c *Client) Query(callID string) (Reply, error) {
	return c.Run("query", "--call-id="+callID)
}

// Delete ends the call.
func (c *Client) Delete(callID, fromTag string) (Reply, error) {
	return c.Run("delete", "--call-id="+callID, "--from-tag="+fromTag)
}

// UnknownCall returns nil if the ng port says it knows no call callID (a
// query answers "Unknown call-id"), ErrNotYet-wrapped otherwise: for
// netnstest.WaitFor after a delete.
func (c *Client) UnknownCall(callID string) error {
	r, err := c.Query(callID)
	var e *ErrorReply
	if errors.As(err, &e) && e.Reason == "Unknown call-id" {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("call %s still known: %v: %w", callID, r.Dict, netnstest.ErrNotYet)
}

// NormalizeSDP makes the SDPs two relays wrote comparable: the relay's own
// addresses (relayAddrs) become RELAY-IP4 or RELAY-IP6, each m= port
// becomes PORT, and an a=rtcp port PORT or PORT+1 relative to its m= line's
// (other ports: RTCP-PORT). What the relays chose differs; what they did
// with the SDP must not.
func NormalizeSDP(sdp string, relayAddrs ...netip.Addr) string {
	lines := strings.Split(strings.TrimRight(sdp, "\r\n"), "\r\n")
	port := -1
	for i, line := range lines {
		for _, a := range relayAddrs {
			name := "RELAY-IP4"
			if a.Is6() {
				name = "RELAY-IP6"
			}
			line = replaceWord(line, a.String(), name)
		}
		switch {
		case strings.HasPrefix(line, "m="):
			f := strings.Fields(line)
			if len(f) > 1 {
				p, _, _ := strings.Cut(f[1], "/") // PORT/COUNT
				port, _ = strconv.Atoi(p)
				f[1] = "PORT" + strings.TrimPrefix(f[1], p)
				line = strings.Join(f, " ")
			}
		case strings.HasPrefix(line, "a=rtcp:"):
			p, rest, _ := strings.Cut(strings.TrimPrefix(line, "a=rtcp:"), " ")
			n, _ := strconv.Atoi(p)
			switch n {
			case port:
				p = "PORT"
			case port + 1:
				p = "PORT+1"
			default:
				p = "RTCP-PORT"
			}
			line = strings.TrimSpace("a=rtcp:" + p + " " + rest)
		}
		lines[i] = line
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// replaceWord replaces old in s where it stands as a whole address (not
// inside a longer one: 203.0.113.1 in 203.0.113.10).
func replaceWord(s, old, new string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			return b.String() + s
		}
		end := i + len(old)
		whole := (i == 0 || !isAddrByte(s[i-1])) && (end == len(s) || !isAddrByte(s[end]))
		b.WriteString(s[:i])
		if whole {
			b.WriteString(new)
		} else {
			b.WriteString(old)
		}
		s = s[end:]
	}
}

func isAddrByte(c byte) bool {
	return c == '.' || c == ':' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
