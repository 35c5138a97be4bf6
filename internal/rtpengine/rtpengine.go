// Package rtpengine runs the real rtpengine (Debian's rtpengine-daemon) in
// userspace mode and speaks the ng control protocol to it, or to any ng
// server (mediastack serve --listen-ng): what the benchmark and the tests
// that compare mediastack with rtpengine share.
//
// Args is the daemon's command line (docs/research/rtpengine-ng.md,
// section 5, says why each option); Conn is an ng client socket that sends
// one request at a time, each with a cookie of its own, as one Kamailio
// worker does.
//
//	c, err := rtpengine.Dial(ngAddr, "bench")
//	reply, err := c.Do(bencode.Dict{"command": "offer", "call-id": id, ...})
package rtpengine

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/mediastack/mediastack/internal/bencode"
)

// Options say where rtpengine listens.
type Options struct {
	NG         netip.AddrPort // the ng control port (UDP)
	Interfaces []netip.Addr   // the media addresses: at most one IPv4, one IPv6
	// PortMin and PortMax bound the media ports; zero means 30000-30999.
	PortMin, PortMax uint16
	// PidFile is where the daemon writes its pid (it wants one).
	PidFile string
}

// Args returns the command line that runs rtpengine in the foreground,
// forwarding in userspace only (--table=-1), with no config file, logging
// to stderr, and deleted calls freed at once (--delete-delay=0).
func Args(o Options) []string {
	if o.PortMin == 0 {
		o.PortMin, o.PortMax = 30000, 30999
	}
	args := []string{"rtpengine", "--config-file=none", "--table=-1",
		"--listen-ng=" + o.NG.String(),
		"--port-min=" + strconv.Itoa(int(o.PortMin)), "--port-max=" + strconv.Itoa(int(o.PortMax)),
		"--foreground", "--log-stderr", "--log-level=6", "--delete-delay=0",
		"--pidfile=" + o.PidFile}
	for _, a := range o.Interfaces {
		args = append(args, "--interface="+a.String())
	}
	return args
}

// Conn is one ng client socket: a request at a time.
type Conn struct {
	conn    *net.UDPConn
	prefix  string
	n       int
	buf     []byte
	timeout time.Duration
}

// DefaultTimeout bounds the wait for one reply: a hang guard.
const DefaultTimeout = 10 * time.Second

// Dial opens a client socket to the ng port ng; its cookies start with
// prefix. Call it inside the namespace the ng port is in.
func Dial(ng netip.AddrPort, prefix string) (*Conn, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ng))
	if err != nil {
		return nil, err
	}
	return &Conn{conn: c, prefix: prefix, buf: make([]byte, 65535), timeout: DefaultTimeout}, nil
}

// SetTimeout sets how long Do waits for a reply (DefaultTimeout).
func (c *Conn) SetTimeout(d time.Duration) { c.timeout = d }

// Close closes the socket.
func (c *Conn) Close() error { return c.conn.Close() }

// ErrResult is wrapped by the error of a reply whose result is neither ok
// nor pong.
var ErrResult = errors.New("ng request failed")

// Do sends one request and returns the reply dictionary; a reply whose
// result is not ok (or pong) is returned with an error wrapping ErrResult.
func (c *Conn) Do(req bencode.Dict) (bencode.Dict, error) {
	c.n++
	cookie := c.prefix + "_" + strconv.Itoa(c.n)
	body, err := bencode.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(append([]byte(cookie+" "), body...)); err != nil {
		return nil, err
	}
	c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	for {
		n, err := c.conn.Read(c.buf)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req["command"], cookie, err)
		}
		reply, ok := bytes.CutPrefix(c.buf[:n], []byte(cookie+" "))
		if !ok {
			continue // a late reply to an earlier request
		}
		v, err := bencode.Unmarshal(reply)
		d, isDict := v.(bencode.Dict)
		if err != nil || !isDict {
			return nil, fmt.Errorf("%s: reply %q: %v", req["command"], reply, err)
		}
		if r := d["result"]; r != "ok" && r != "pong" {
			return d, fmt.Errorf("%s: %w: result %v: %v", req["command"], ErrResult, r, d["error-reason"])
		}
		return d, nil
	}
}
