package simapp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
)

// RTPStreams' traffic: G.711 µ-law, 20 ms packets, an RTCP sender report
// each second answered by a receiver report, on media ports of a range.
const (
	rtpInterval   = 20 * time.Millisecond
	rtpFrameTicks = 160 // 20 ms at 8 kHz
	rtcpInterval  = time.Second

	// RTPPortMin and RTPPortMax bound the media ports RTPStreams opens on
	// both stacks.
	RTPPortMin = 20000
	RTPPortMax = 20099
)

// RTPStreams streams RTP over the fast paths (mediaport) from A's media
// ports to B's, one RTP/RTCP pair per stream on each side, checking the
// order of what arrives. Each stream's sender report is answered with a
// receiver report from B. Without goroutines: Step sends what is due and
// reads what arrived, with non-blocking reads, so a run on a simulated
// network is a function of simulated time alone.
type RTPStreams struct {
	a, b    *mediaport.Manager
	streams []*rtpStream
	bufs    [][]byte
	sizes   []int
	addrs   []netip.AddrPort

	// Sent and Received count RTP packets, OutOfOrder those that arrived
	// after a later one of their stream.
	Sent, Received, OutOfOrder uint64
	// SenderReports counts A's RTCP sender reports, ReceiverReports B's
	// answers that reached A.
	SenderReports, ReceiverReports uint64
}

type rtpStream struct {
	out, in        *mediaport.Pair // A's ports, B's ports
	toRTP, toRTCP  netip.AddrPort  // B's
	backRTCP       netip.AddrPort  // A's RTCP port, where B's reports go
	ssrc           uint32
	seq            uint16
	ts             uint32
	next, nextSR   time.Duration
	pkt            []byte
	expect         uint16 // next sequence number B expects
	started        bool
	received, sent uint64
}

// NewRTPStreams opens media port managers on NIC 0 of a and b, over the
// ports RTPPortMin to RTPPortMax, and an RTP/RTCP pair on each for each of
// the streams (the range holds 50 pairs). aAddr and bAddr are
// the stacks' addresses the streams use. The first packets are due at once,
// the streams staggered by 5 ms.
func NewRTPStreams(a, b *stack.Stack, aAddr, bAddr netip.Addr, streams int) (*RTPStreams, error) {
	d := &RTPStreams{}
	var err error
	opts := mediaport.Options{PortMin: RTPPortMin, PortMax: RTPPortMax}
	if d.a, err = mediaport.NewManager(a, opts); err != nil {
		return nil, err
	}
	if d.b, err = mediaport.NewManager(b, opts); err != nil {
		d.a.Close()
		return nil, err
	}
	for i := range streams {
		out, err := d.a.OpenPair(0)
		if err != nil {
			d.Close()
			return nil, err
		}
		in, err := d.b.OpenPair(0)
		if err != nil {
			out.Close()
			d.Close()
			return nil, err
		}
		s := &rtpStream{
			out: out, in: in,
			toRTP:    netip.AddrPortFrom(bAddr, in.RTP.Port()),
			toRTCP:   netip.AddrPortFrom(bAddr, in.RTCP.Port()),
			backRTCP: netip.AddrPortFrom(aAddr, out.RTCP.Port()),
			ssrc:     0x6d730000 + uint32(i),
			seq:      uint16(1000 * (i + 1)),
			ts:       uint32(160000 * (i + 1)),
			next:     time.Duration(i) * 5 * time.Millisecond, // staggered, as calls are
			pkt:      make([]byte, 12+rtpFrameTicks),
		}
		s.nextSR = s.next + rtcpInterval
		for _, p := range []*mediaport.Port{in.RTP, in.RTCP, out.RTCP} {
			p.SetReadDeadline(time.Unix(1, 0)) // every read is a non-blocking poll
		}
		d.streams = append(d.streams, s)
	}
	for range 16 {
		d.bufs = append(d.bufs, make([]byte, 1500))
	}
	d.sizes, d.addrs = make([]int, len(d.bufs)), make([]netip.AddrPort, len(d.bufs))
	return d, nil
}

// Close releases the ports and the fast paths.
func (d *RTPStreams) Close() {
	for _, s := range d.streams {
		s.out.Close()
		s.in.Close()
	}
	d.a.Close()
	d.b.Close()
}

// Step sends the packets and reports due at now (unless sending is off) and
// reads everything that has arrived.
func (d *RTPStreams) Step(now time.Duration, sending bool) error {
	for _, s := range d.streams {
		for sending && s.next <= now {
			if err := d.sendRTP(s); err != nil {
				return err
			}
			s.next += rtpInterval
		}
		if sending && s.nextSR <= now {
			if err := d.sendSR(s); err != nil {
				return err
			}
			s.nextSR += rtcpInterval
		}
		if err := d.receive(s); err != nil {
			return err
		}
	}
	return nil
}

func (d *RTPStreams) sendRTP(s *rtpStream) error {
	h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: s.seq, Timestamp: s.ts, SSRC: s.ssrc, Marker: s.sent == 0}
	n, err := h.MarshalTo(s.pkt)
	if err != nil {
		return err
	}
	for i := n; i < len(s.pkt); i++ {
		s.pkt[i] = byte(int(s.seq) + i) // a deterministic stand-in for µ-law samples
	}
	if _, err := s.out.RTP.WriteToUDPAddrPort(s.pkt, s.toRTP); err != nil {
		return fmt.Errorf("rtp: %w", err)
	}
	s.seq++
	s.ts += rtpFrameTicks
	s.sent++
	d.Sent++
	return nil
}

func (d *RTPStreams) sendSR(s *rtpStream) error {
	raw, err := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{
		SSRC: s.ssrc, RTPTime: s.ts, PacketCount: uint32(s.sent), OctetCount: uint32(s.sent) * rtpFrameTicks,
	}})
	if err != nil {
		return err
	}
	if _, err := s.out.RTCP.WriteToUDPAddrPort(raw, s.toRTCP); err != nil {
		return fmt.Errorf("rtcp: %w", err)
	}
	d.SenderReports++
	return nil
}

// receive reads what B's ports and A's RTCP port hold: RTP in batches,
// checked for order; each sender report answered with a receiver report.
func (d *RTPStreams) receive(s *rtpStream) error {
	for {
		n, err := s.in.RTP.ReadBatch(d.bufs, d.sizes, d.addrs)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return err
		}
		for i := range n {
			var h rtp.Header
			if _, err := h.Unmarshal(d.bufs[i][:d.sizes[i]]); err != nil {
				return fmt.Errorf("rtp from %v: %w", d.addrs[i], err)
			}
			if s.started && int16(h.SequenceNumber-s.expect) < 0 {
				d.OutOfOrder++
			} else {
				s.expect = h.SequenceNumber + 1
			}
			s.started = true
			s.received++
			d.Received++
		}
	}
	buf := d.bufs[0]
	for {
		n, from, err := s.in.RTCP.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return err
		}
		if _, err := rtcp.Unmarshal(buf[:n]); err != nil {
			return fmt.Errorf("rtcp from %v: %w", from, err)
		}
		raw, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: s.ssrc + 0x100, Reports: []rtcp.ReceptionReport{{
			SSRC: s.ssrc, LastSequenceNumber: uint32(s.expect - 1), TotalLost: uint32(s.sent - s.received),
		}}}})
		if err != nil {
			return err
		}
		if _, err := s.in.RTCP.WriteToUDPAddrPort(raw, from); err != nil {
			return fmt.Errorf("rtcp: %w", err)
		}
	}
	for {
		n, _, err := s.out.RTCP.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := rtcp.Unmarshal(buf[:n]); err != nil {
			return err
		}
		d.ReceiverReports++
	}
}

// Streams returns the number of streams.
func (d *RTPStreams) Streams() int { return len(d.streams) }

// Stats returns the media port managers' counters, A's and B's.
func (d *RTPStreams) Stats() (a, b mediaport.Stats) { return d.a.Stats(), d.b.Stats() }
