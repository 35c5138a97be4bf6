package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
)

// The generator's relay mode: it plays both phones of K calls through a
// relay. Each call has two legs; a leg is a socket of the generator's (Src)
// and the relay's port it sends to (Dst). What leg 2i sends, the relay
// forwards to leg 2i+1's socket, and the other way round. The generator
// sends to every leg in turn, at the rate asked for, as whole frames from
// the AF_PACKET socket the reflector's steps use; it reads every leg's
// socket with recvmmsg as epoll finds them readable, on a thread of its
// own, and times each datagram one way (send to receive: one clock).

// genLeg is one leg of a relayed call.
type genLeg struct {
	Src netip.AddrPort `json:"s"` // the generator's socket
	Dst netip.AddrPort `json:"d"` // the relay's port for it
}

// The relay mode's datagrams are RTP (version 2, PCMU, a sequence number
// and timestamp per leg, the leg's index as SSRC), then the probe header at
// relayProbeOffset: magic, step, the step's sequence number, send time.
const (
	rtpHeaderLen     = 12
	relayProbeOffset = rtpHeaderLen
	relayMinSize     = relayProbeOffset + probeHeaderLen
)

// relayLegs are the generator's calls: a socket per leg, and their frames.
type relayLegs struct {
	*relayFrames
	g       *generator
	legs    []genLeg
	fds     []int
	legOfFD []int32
	epfd    int
	stop    atomic.Bool
	done    chan struct{}

	mu       sync.Mutex
	epoch    uint32
	received uint64
	perLeg   []uint32
	lat      []int64 // one-way times, ns
}

// relayFrames are a frame per leg to copy into a batch slot and stamp.
type relayFrames struct {
	templates [][]byte
	baseSums  []uint16 // each template's partial UDP checksum
	rtpSeq    []uint16
	payload   int // offset of the UDP payload in a frame
	udpSum    int // offset of the UDP checksum
	batch     [][]byte
	step      uint32 // the step's number, stamped into every datagram
}

func (g *generator) closeRelay() {
	if g.relay != nil {
		g.relay.close()
		g.relay = nil
	}
}

// relayStep sets up the legs when the request has them, then, if it asks
// for a rate, sends through the relay and counts what arrives.
func (g *generator) relayStep(req genRequest) (genReply, error) {
	if req.Legs != nil {
		g.closeRelay()
		r, err := newRelayLegs(g, req)
		if err != nil {
			return genReply{}, err
		}
		g.relay = r
	}
	if req.Rate == 0 {
		return genReply{}, nil
	}
	r := g.relay
	switch {
	case r == nil || len(r.legs) == 0:
		return genReply{}, errors.New("relay step before any legs")
	case req.Rate < 0 || req.DurationMs <= 0:
		return genReply{}, errors.New("rate and duration must be positive")
	}
	fs, err := g.sender(req.Iface)
	if err != nil {
		return genReply{}, err
	}
	g.epoch++
	r.step = g.epoch
	r.mu.Lock()
	r.epoch, r.received, r.lat = g.epoch, 0, r.lat[:0]
	clear(r.perLeg)
	r.mu.Unlock()
	rep, err := g.run(fs, r, req, r.legs[0].Src.Addr().Is6())
	if err != nil {
		return genReply{}, err
	}
	r.mu.Lock()
	rep.Received = r.received
	lat := slices.Clone(r.lat)
	for i := 0; i+1 < len(r.perLeg); i += 2 {
		if r.perLeg[i] == 0 || r.perLeg[i+1] == 0 {
			rep.Silent++
		}
	}
	r.epoch = 0 // later datagrams are late
	r.mu.Unlock()
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) float64 { return float64(lat[min(int(float64(len(lat))*p), len(lat)-1)]) / 1e3 }
		rep.P50Micros, rep.P99Micros, rep.P999Micros = q(0.5), q(0.99), q(0.999)
	}
	return rep, nil
}

func newRelayLegs(g *generator, req genRequest) (r *relayLegs, err error) {
	rf, err := newRelayFrames(req)
	if err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	r = &relayLegs{relayFrames: rf, g: g, legs: req.Legs, epfd: epfd, done: make(chan struct{}), perLeg: make([]uint32, len(req.Legs))}
	defer func() {
		if err != nil {
			close(r.done) // no receiver yet
			r.close()
		}
	}()
	for i, leg := range req.Legs {
		fd, err := openLegSocket(leg.Src)
		if err != nil {
			return nil, fmt.Errorf("leg %d (%v): %w", i, leg.Src, err)
		}
		r.fds = append(r.fds, fd)
		if fd >= len(r.legOfFD) {
			r.legOfFD = append(r.legOfFD, make([]int32, fd+1-len(r.legOfFD))...)
		}
		r.legOfFD[fd] = int32(i)
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return nil, err
		}
	}
	go r.receive()
	return r, nil
}

// newRelayFrames builds the frame of every leg of req.
func newRelayFrames(req genRequest) (*relayFrames, error) {
	src, err := net.ParseMAC(req.SrcMAC)
	if err != nil {
		return nil, err
	}
	dst, err := net.ParseMAC(req.DstMAC)
	if err != nil {
		return nil, err
	}
	if len(req.Legs) == 0 || len(req.Legs)%2 != 0 {
		return nil, fmt.Errorf("%d legs: calls have two", len(req.Legs))
	}
	size := max(req.Size, relayMinSize)
	rf := &relayFrames{rtpSeq: make([]uint16, len(req.Legs))}
	payload := make([]byte, size)
	payload[0], payload[1] = 0x80, 0 // RTP version 2, PCMU
	binary.BigEndian.PutUint32(payload[relayProbeOffset:], probeMagic)
	for i, leg := range req.Legs {
		if leg.Src.Addr().Is6() != req.Legs[0].Src.Addr().Is6() || leg.Dst.Addr().Is6() != leg.Src.Addr().Is6() {
			return nil, errors.New("legs of more than one IP version")
		}
		binary.BigEndian.PutUint32(payload[8:], uint32(i)) // SSRC
		f := frames.UDP{SrcMAC: tcpip.LinkAddress(src), DstMAC: tcpip.LinkAddress(dst), Src: leg.Src, Dst: leg.Dst, Payload: payload, Flags: header.IPv4FlagDontFragment}.Build()
		if i == 0 {
			rf.payload = len(f) - size
			rf.udpSum = rf.payload - header.UDPMinimumSize + 6
		}
		rf.templates = append(rf.templates, f)
		// The checksum covers zeros where the per-datagram fields go.
		rf.baseSums = append(rf.baseSums, ^binary.BigEndian.Uint16(f[rf.udpSum:]))
	}
	rf.batch = make([][]byte, genBatch)
	for i := range rf.batch {
		rf.batch[i] = make([]byte, len(rf.templates[0]))
	}
	return rf, nil
}

// openLegSocket opens a leg's UDP socket, non-blocking, for epoll.
func openLegSocket(ap netip.AddrPort) (int, error) {
	domain := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if ap.Addr().Is6() {
		domain = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// Room for a burst: a drop here is the generator's, and is reported
	// as such (RcvbufErrors).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (r *relayFrames) slots() [][]byte { return r.batch }

// stamp makes slot i datagram seq of the step: to leg seq mod the legs,
// the leg's next RTP sequence number and timestamp, the probe fields.
func (r *relayFrames) stamp(i int, seq, now uint64) {
	leg := int(seq % uint64(len(r.templates)))
	f := r.batch[i]
	copy(f, r.templates[leg])
	p := f[r.payload:]
	rs := r.rtpSeq[leg]
	r.rtpSeq[leg]++
	binary.BigEndian.PutUint16(p[2:], rs)
	binary.BigEndian.PutUint32(p[4:], uint32(rs)*160) // 20 ms of 8 kHz audio
	fields := p[relayProbeOffset+4 : relayProbeOffset+probeHeaderLen]
	binary.BigEndian.PutUint32(fields, r.step)
	binary.BigEndian.PutUint64(fields[4:], seq)
	binary.BigEndian.PutUint64(fields[12:], now)
	sum := checksum.Combine(r.baseSums[leg], checksum.Checksum(p[2:8], 0))
	c := ^checksum.Combine(sum, checksum.Checksum(fields, 0))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[r.udpSum:], c)
}

// receive reads every readable leg until close.
func (r *relayLegs) receive() {
	defer close(r.done)
	// epoll_wait and recvmmsg block this thread, not the runtime's others.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rx := newMmsgReceiver(genBatch, 2048)
	events := make([]unix.EpollEvent, 256)
	for !r.stop.Load() {
		n, err := unix.EpollWait(r.epfd, events, 50)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			for {
				k := rx.recv(fd)
				if k <= 0 {
					break
				}
				r.count(rx, k, r.legOfFD[fd])
				if k < genBatch {
					break
				}
			}
		}
	}
}

// count counts k datagrams rx received on leg.
func (r *relayLegs) count(rx *mmsgReceiver, k int, leg int32) {
	now := r.g.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for j := range k {
		b := rx.datagram(j)
		off := relayProbeOffset
		if len(b) < off+probeHeaderLen || binary.BigEndian.Uint32(b[off:]) != probeMagic || binary.BigEndian.Uint32(b[off+4:]) != r.epoch || r.epoch == 0 {
			continue // not ours, or late
		}
		r.received++
		r.perLeg[leg]++
		r.lat = append(r.lat, now-int64(binary.BigEndian.Uint64(b[off+16:])))
	}
}

func (r *relayLegs) close() {
	r.stop.Store(true)
	<-r.done
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	unix.Close(r.epfd)
}
