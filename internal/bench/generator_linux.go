package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/frames"
)

// The load generator runs inside the peer's network namespace as
// `mediastack bench-helper generator`. It reads one genRequest per line on
// stdin, sends UDP at the requested rate to the reflector under test,
// counts what comes back, and writes one genReply per line on stdout.
//
// It sends whole frames, built once per batch slot, through an AF_PACKET
// socket on its interface, a batch per sendmmsg and no qdisc, so its kernel
// does no IP or UDP work on the way out; it paces with nanosleep (the Go
// runtime's timers wake about a millisecond late here). Replies come back
// to an ordinary UDP socket bound to the frames' source, read in batches
// with recvmmsg (golang.org/x/net's ReadBatch) and UDP_GRO, so a reply
// train comes in as one message: the kernel is the peer. When
// it cannot send at the rate asked for, or its own socket dropped replies,
// it says so: genReply.Limited.

// genRequest asks the generator for one step.
type genRequest struct {
	// Iface is the generator's interface, SrcMAC its MAC and Src the
	// address and port the replies come back to; DstMAC and Dst are the
	// reflector's.
	Iface      string         `json:"iface"`
	SrcMAC     string         `json:"src_mac"`
	DstMAC     string         `json:"dst_mac"`
	Src        netip.AddrPort `json:"src"`
	Dst        netip.AddrPort `json:"dst"`
	Rate       float64        `json:"rate"`        // packets per second
	DurationMs int            `json:"duration_ms"` // how long to send
	DrainMs    int            `json:"drain_ms"`    // how long to wait for late replies
	Size       int            `json:"size"`        // UDP payload bytes
	Latency    bool           `json:"latency"`     // one datagram per send, record every round trip

	// Relay mode (relaygen_linux.go): Legs, when set, replace the
	// generator's calls, opening a socket for each leg; Relay sends to
	// every leg in turn instead of to Dst. Src, Dst and Size are unused.
	Legs  []genLeg `json:"legs,omitempty"`
	Relay bool     `json:"relay,omitempty"`
}

// genReply is what one step measured.
type genReply struct {
	Sent     uint64  `json:"sent"`
	Received uint64  `json:"received"`
	SendRate float64 `json:"send_rate"` // achieved, packets per second
	// Limited: the generator sent under 97% of the rate asked for, or its
	// own socket dropped replies (RcvbufErrors).
	Limited      bool   `json:"limited"`
	RcvbufErrors uint64 `json:"rcvbuf_errors"`
	// Refused counts frames the link towards the reflector dropped at once
	// (its queue was full); they count as sent and lost.
	Refused   uint64  `json:"refused"`
	P50Micros float64 `json:"p50_us"`
	P99Micros float64 `json:"p99_us"`
	// Relay mode: the one-way times (every datagram's), and the calls
	// with a leg that received nothing in the step.
	P999Micros float64 `json:"p999_us,omitempty"`
	Silent     int     `json:"silent,omitempty"`
	Err        string  `json:"err,omitempty"`
}

// Loss is the fraction of the datagrams sent that did not come back.
func (r genReply) Loss() float64 {
	if r.Sent == 0 {
		return 1
	}
	if r.Received >= r.Sent {
		return 0
	}
	return 1 - float64(r.Received)/float64(r.Sent)
}

// probeHeader is what every generated payload starts with: a magic, the
// step it belongs to, its sequence number and its send time.
const (
	probeMagic     = 0x4d534247 // "MSBG"
	probeHeaderLen = 24
)

// batchConn is ipv4.PacketConn or ipv6.PacketConn: their Message types are
// both socket.Message.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// genBatch is the most frames one sendmmsg sends.
const genBatch = 64

type generator struct {
	start   time.Time
	sockets map[netip.AddrPort]*genSocket // by the address replies come to
	senders map[string]*frameSender       // by interface
	epoch   uint32
	relay   *relayLegs // relay mode's calls
}

// genSocket is the generator's socket of one IP version, with the
// goroutine that reads the replies.
type genSocket struct {
	conn *net.UDPConn
	pc   batchConn
	g    *generator

	mu       sync.Mutex
	epoch    uint32
	received uint64
	latency  bool
	rtts     []time.Duration
}

func runGenerator(stdin io.Reader, stdout io.Writer) error {
	g := &generator{start: time.Now(), sockets: map[netip.AddrPort]*genSocket{}, senders: map[string]*frameSender{}}
	defer func() {
		for _, s := range g.sockets {
			s.conn.Close()
		}
		for _, s := range g.senders {
			s.close()
		}
	}()
	defer g.closeRelay()
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 16<<20) // a request with 20,000 legs
	enc := json.NewEncoder(stdout)
	for sc.Scan() {
		var req genRequest
		var rep genReply
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			rep.Err = fmt.Sprintf("bad request: %v", err)
		} else if rep, err = g.step(req); err != nil {
			rep.Err = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (g *generator) now() int64 { return int64(time.Since(g.start)) }

func (g *generator) socket(src netip.AddrPort) (*genSocket, error) {
	if s := g.sockets[src]; s != nil {
		return s, nil
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
	if err != nil {
		return nil, err
	}
	// Room for every reply of a step: a drop here is the generator's, not
	// the path's, and is reported as such.
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
			// A reflector's UDP train (a TAP's GSO frame, a kernel
			// socket's UDP_SEGMENT send) arrives as one message, cut
			// apart by receive: without it the kernel cuts it and the
			// generator takes every datagram singly, which made it,
			// not the path, the limit (Linux 5.0 and later).
			_ = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
		})
	}
	s := &genSocket{conn: conn, g: g}
	if src.Addr().Is6() {
		s.pc = ipv6.NewPacketConn(conn)
	} else {
		s.pc = ipv4.NewPacketConn(conn)
	}
	g.sockets[src] = s
	go s.receive()
	return s, nil
}

func (s *genSocket) receive() {
	msgs := make([]ipv4.Message, 64)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 65536)}
		msgs[i].OOB = make([]byte, unix.CmsgSpace(4))
	}
	for {
		for i := range msgs {
			msgs[i].OOB = msgs[i].OOB[:cap(msgs[i].OOB)]
		}
		n, err := s.pc.ReadBatch(msgs, 0)
		if err != nil {
			return // closed
		}
		now := s.g.now()
		s.mu.Lock()
		for _, m := range msgs[:n] {
			b := m.Buffers[0][:m.N]
			seg := groSize(m.OOB[:m.NN])
			if seg <= 0 {
				seg = len(b)
			}
			for len(b) > 0 {
				d := b[:min(seg, len(b))]
				b = b[len(d):]
				s.count(d, now)
			}
		}
		s.mu.Unlock()
	}
}

// count counts reply d, if it is one of this step's; s.mu is held.
func (s *genSocket) count(d []byte, now int64) {
	if len(d) < probeHeaderLen || binary.BigEndian.Uint32(d) != probeMagic || binary.BigEndian.Uint32(d[4:]) != s.epoch {
		return // not ours, or a late reply of an earlier step
	}
	s.received++
	if s.latency {
		s.rtts = append(s.rtts, time.Duration(now-int64(binary.BigEndian.Uint64(d[16:]))))
	}
}

// step sends at req.Rate for req.DurationMs and counts the replies.
func (g *generator) step(req genRequest) (genReply, error) {
	if req.Legs != nil || req.Relay {
		return g.relayStep(req)
	}
	switch {
	case !req.Dst.IsValid() || !req.Src.IsValid() || req.Dst.Addr().Is6() != req.Src.Addr().Is6():
		return genReply{}, errors.New("no source and destination of one IP version")
	case req.Rate <= 0 || req.DurationMs <= 0:
		return genReply{}, errors.New("rate and duration must be positive")
	case req.Size < probeHeaderLen || req.Size > 65000:
		return genReply{}, fmt.Errorf("size %d out of range [%d, 65000]", req.Size, probeHeaderLen)
	}
	s, err := g.socket(req.Src)
	if err != nil {
		return genReply{}, err
	}
	fs, err := g.sender(req.Iface)
	if err != nil {
		return genReply{}, err
	}
	frames, err := newProbeFrames(req, g.epoch+1)
	if err != nil {
		return genReply{}, err
	}
	g.epoch++
	s.mu.Lock()
	s.epoch, s.received, s.latency, s.rtts = g.epoch, 0, req.Latency, s.rtts[:0]
	s.mu.Unlock()
	rep, err := g.run(fs, frames, req, req.Dst.Addr().Is6())
	if err != nil {
		return genReply{}, err
	}
	s.mu.Lock()
	rep.Received = s.received
	rtts := slices.Clone(s.rtts)
	s.epoch = 0 // later replies are late
	s.mu.Unlock()
	if len(rtts) > 0 {
		slices.Sort(rtts)
		rep.P50Micros = float64(rtts[len(rtts)/2].Nanoseconds()) / 1e3
		rep.P99Micros = float64(rtts[min(len(rtts)*99/100, len(rtts)-1)].Nanoseconds()) / 1e3
	}
	return rep, nil
}

// sender is the frame sender on iface, opened on first use.
func (g *generator) sender(iface string) (*frameSender, error) {
	fs := g.senders[iface]
	if fs == nil {
		var err error
		if fs, err = newFrameSender(iface, genBatch); err != nil {
			return nil, err
		}
		g.senders[iface] = fs
	}
	return fs, nil
}

// run sends a step's datagrams and waits DrainMs for the last to come
// back: the reply with what was sent; the caller counts what came back.
func (g *generator) run(fs *frameSender, st stamper, req genRequest, v6 bool) (genReply, error) {
	drops0 := udpRcvbufErrors(v6)
	sent, refused, elapsed, err := g.send(fs, st, req)
	if err != nil {
		return genReply{}, err
	}
	time.Sleep(time.Duration(req.DrainMs) * time.Millisecond)
	rep := genReply{Sent: sent, Refused: refused}
	rep.setRate(req, elapsed, udpRcvbufErrors(v6)-drops0)
	return rep, nil
}

// setRate fills in the rate the step sent at and the generator's own
// drops (rcvbufErrors), and whether it was the limit.
func (rep *genReply) setRate(req genRequest, elapsed time.Duration, rcvbufErrors uint64) {
	rep.SendRate = float64(rep.Sent) / elapsed.Seconds()
	rep.RcvbufErrors = rcvbufErrors
	rep.Limited = rep.SendRate < 0.97*req.Rate || rep.RcvbufErrors > 0
}

// probeFrames are the frames of one step, a batch of them, and the sums
// that let each one's UDP checksum be finished after its sequence number
// and send time are written.
type probeFrames struct {
	frames   [][]byte
	payload  int    // offset of the UDP payload in a frame
	udpSum   int    // offset of the UDP checksum
	baseSums uint16 // partial checksum of everything but the sequence and time
}

func newProbeFrames(req genRequest, epoch uint32) (*probeFrames, error) {
	src, err := net.ParseMAC(req.SrcMAC)
	if err != nil {
		return nil, err
	}
	dst, err := net.ParseMAC(req.DstMAC)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, req.Size)
	binary.BigEndian.PutUint32(payload, probeMagic)
	binary.BigEndian.PutUint32(payload[4:], epoch)
	pf := &probeFrames{frames: make([][]byte, genBatch)}
	for i := range pf.frames {
		pf.frames[i] = frames.UDP{SrcMAC: tcpip.LinkAddress(src), DstMAC: tcpip.LinkAddress(dst), Src: req.Src, Dst: req.Dst, Payload: payload, Flags: header.IPv4FlagDontFragment}.Build()
	}
	f := pf.frames[0]
	pf.payload = len(f) - req.Size
	pf.udpSum = pf.payload - header.UDPMinimumSize + 6
	// The checksum in the frame covers the zero sequence and time: undo
	// its complement to get the partial sum the per-packet fields add to.
	pf.baseSums = ^binary.BigEndian.Uint16(f[pf.udpSum:])
	return pf, nil
}

// stamper fills the generator's batch slots with the frames it sends:
// the reflector's probes or the relay's RTP-like datagrams.
type stamper interface {
	// stamp makes slot i the frame of datagram seq, sent at now (the
	// generator's clock), checksum and all.
	stamp(i int, seq, now uint64)
	// slots are the frames of a batch.
	slots() [][]byte
}

func (pf *probeFrames) slots() [][]byte { return pf.frames }

// stamp writes the sequence number and send time into frame i and
// finishes its UDP checksum.
func (pf *probeFrames) stamp(i int, seq, now uint64) {
	f := pf.frames[i]
	fields := f[pf.payload+8 : pf.payload+probeHeaderLen]
	binary.BigEndian.PutUint64(fields, seq)
	binary.BigEndian.PutUint64(fields[8:], now)
	c := ^checksum.Combine(pf.baseSums, checksum.Checksum(fields, 0))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[pf.udpSum:], c)
}

// send paces frames at req.Rate: it sends whatever is due in one sendmmsg
// (at least 100 µs worth of packets, at most a batch; one at a time in
// latency mode) and nanosleeps until the next is due.
func (g *generator) send(fs *frameSender, pf stamper, req genRequest) (sent, refused uint64, elapsed time.Duration, err error) {
	// The pacing sleeps are syscalls on this thread; keep the goroutine
	// on it so no other goroutine waits behind them.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	batch := genBatch
	minBatch := max(1, min(batch, int(req.Rate*100e-6)))
	if req.Latency {
		batch, minBatch = 1, 1
	}
	dur := time.Duration(req.DurationMs) * time.Millisecond
	start := time.Now()
	for {
		el := time.Since(start)
		if el >= dur {
			return sent, refused, el, nil
		}
		due := int64(req.Rate*el.Seconds()) + 1 - int64(sent)
		if due < int64(minBatch) {
			next := time.Duration(float64(sent+uint64(minBatch)) / req.Rate * 1e9)
			if wait := next - el; wait > 0 {
				ts := unix.NsecToTimespec(int64(wait))
				_ = unix.Nanosleep(&ts, nil)
			}
			continue
		}
		k := int(min(due, int64(batch)))
		now := uint64(g.now())
		for i := range k {
			pf.stamp(i, sent+uint64(i), now)
		}
		n, err := fs.send(pf.slots()[:k])
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
				// The device's queue towards the reflector is full (a TAP
				// whose reader lags, a veth peer's backlog): the first
				// frame is dropped there. It counts as sent and lost, as
				// a frame a slow receiver misses on a wire.
				sent++
				refused++
				continue
			}
			return sent, refused, time.Since(start), err
		}
		sent += uint64(n)
	}
}

// udpRcvbufErrors reads the namespace's UDP (or UDP6) receive-buffer
// drops from /proc/net/snmp (snmp6): the generator's own losses.
func udpRcvbufErrors(v6 bool) uint64 {
	if v6 {
		b, err := os.ReadFile("/proc/net/snmp6")
		if err != nil {
			return 0
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				return v
			}
		}
		return 0
	}
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

// runKernelReflector answers every datagram on the given addresses with
// Linux's own UDP sockets at their best, batched and offloaded: UDP_GRO
// merges a flow's datagrams into one buffer on receive, recvmmsg takes up
// to 64 such buffers, and sendmmsg sends each back to its source with
// UDP_SEGMENT, so the kernel cuts it into the same datagrams again (the
// fast reflector sends UDP trains too; the anchor gets the same offloads). It prints "ready" once bound and
// exits when stdin closes (the bench that started it is done or gone).
func runKernelReflector(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("kernel-reflector: no address to listen on")
	}
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	errc := make(chan error, len(args))
	for _, a := range args {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return fmt.Errorf("kernel-reflector: %w", err)
		}
		conn, pc, err := listenKernelReflector(ap)
		if err != nil {
			return fmt.Errorf("kernel-reflector: %w", err)
		}
		conns = append(conns, conn)
		go func() { errc <- reflectBatches(pc) }()
	}
	fmt.Fprintln(stdout, "ready")
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		errc <- nil
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}

// listenKernelReflector opens the kernel reflector's socket on ap: large
// buffers and UDP_GRO.
func listenKernelReflector(ap netip.AddrPort) (*net.UDPConn, batchConn, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, nil, err
	}
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, linkSocketBuffer)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
			// Linux 5.0 and later; without it every datagram is a
			// message of its own and no segment size is reported.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
		})
	}
	if ap.Addr().Is6() {
		return conn, ipv6.NewPacketConn(conn), nil
	}
	return conn, ipv4.NewPacketConn(conn), nil
}

// reflectBatches answers every datagram pc receives to its source until pc
// is closed. Like the fast reflector, it sends trains: a merged (GRO)
// buffer goes back as one UDP_SEGMENT send, and so do consecutive
// datagrams of a batch from one source and of one size (the last may be
// shorter), copied into one buffer; the kernel cuts them apart again.
func reflectBatches(pc batchConn) error {
	const batch = 64
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 65536)}
		msgs[i].OOB = make([]byte, unix.CmsgSpace(4))
	}
	out := make([]ipv4.Message, batch)
	segment := make([][]byte, batch) // a UDP_SEGMENT control message each
	trains := make([][]byte, batch)
	for i := range out {
		out[i].Buffers = make([][]byte, 1)
		segment[i] = make([]byte, unix.CmsgSpace(2))
		putCmsgHeader(segment[i], unix.CmsgLen(2), unix.SOL_UDP, unix.UDP_SEGMENT)
		trains[i] = make([]byte, 0, 65536)
	}
	for {
		for i := range msgs {
			msgs[i].OOB = msgs[i].OOB[:cap(msgs[i].OOB)]
		}
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		o := 0
		for i := 0; i < n; o++ {
			m := &msgs[i]
			data := m.Buffers[0][:m.N]
			out[o].Buffers[0], out[o].Addr, out[o].OOB = data, m.Addr, nil
			segSize := groSize(m.OOB[:m.NN])
			j := i + 1
			if segSize == 0 && m.N > 0 {
				total := m.N
				for j < n && msgs[j-1].N == m.N && msgs[j].N <= m.N && total+msgs[j].N <= maxUDPPayload &&
					groSize(msgs[j].OOB[:msgs[j].NN]) == 0 && sameUDPAddr(msgs[j].Addr, m.Addr) {
					total += msgs[j].N
					j++
				}
				if j > i+1 {
					train := trains[o][:0]
					for _, mm := range msgs[i:j] {
						train = append(train, mm.Buffers[0][:mm.N]...)
					}
					out[o].Buffers[0], segSize = train, m.N
				}
			}
			if segSize > 0 && segSize < len(out[o].Buffers[0]) {
				binary.NativeEndian.PutUint16(segment[o][unix.CmsgLen(0):], uint16(segSize))
				out[o].OOB = segment[o]
			}
			i = j
		}
		for k := 0; k < o; {
			w, err := pc.WriteBatch(out[k:o], 0)
			if err != nil {
				if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
					k++ // drop one: a full queue loses datagrams, as a socket does
					continue
				}
				return err
			}
			k += w
		}
	}
}

// maxUDPPayload is the most a UDP datagram (or a UDP_SEGMENT train) holds.
const maxUDPPayload = 65507

func sameUDPAddr(a, b net.Addr) bool {
	x, ok1 := a.(*net.UDPAddr)
	y, ok2 := b.(*net.UDPAddr)
	return ok1 && ok2 && x.Port == y.Port && x.IP.Equal(y.IP)
}

// The control message header (struct cmsghdr) is a size_t length, then
// the level and the type as ints.
const cmsgLenSize = unix.SizeofCmsghdr - 8

func putCmsgHeader(b []byte, length, level, typ int) {
	if cmsgLenSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(length))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(length))
	}
	binary.NativeEndian.PutUint32(b[cmsgLenSize:], uint32(level))
	binary.NativeEndian.PutUint32(b[cmsgLenSize+4:], uint32(typ))
}

// groSize returns the segment size of a UDP_GRO control message in oob, or
// 0 when the kernel merged nothing.
func groSize(oob []byte) int {
	for len(oob) >= unix.CmsgLen(0) {
		var length int
		if cmsgLenSize == 8 {
			length = int(binary.NativeEndian.Uint64(oob))
		} else {
			length = int(binary.NativeEndian.Uint32(oob))
		}
		level := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize+4:]))
		if length < unix.CmsgLen(0) || length > len(oob) {
			return 0
		}
		if level == unix.SOL_UDP && typ == unix.UDP_GRO && length >= unix.CmsgLen(4) {
			return int(binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):]))
		}
		oob = oob[min(unix.CmsgSpace(length-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}
