package mediaport_test

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
)

var rtpCompare = []cmp.Option{
	cmpopts.IgnoreFields(rtp.Header{}, "PayloadOffset"),
	cmpopts.IgnoreFields(rtp.Packet{}, "Raw", "PaddingSize"),
	cmpopts.EquateEmpty(),
}

// TestPionRTPAndRTCP: A streams one second of G.711 µ-law packetized by
// pion/rtp from an RTP/RTCP pair to B's pair, with sender reports built by
// pion/rtcp every 250 ms; B answers each with a receiver report computed
// from what it read (highest sequence number, interarrival jitter from the
// ports' receive timestamps). Everything is checked with pion's Unmarshal
// against what was sent, and went through the fast paths.
func TestPionRTPAndRTCP(t *testing.T) {
	const (
		ssrcA      = 0x5eed0001
		ssrcB      = 0x5eed0002
		clockRate  = 8000
		frameTicks = 160 // 20 ms at 8 kHz
	)
	l := newSimLAN(t, sim.Impairments{Delay: 5 * time.Millisecond, Jitter: 4 * time.Millisecond},
		mediaport.Options{Ring: fastfilter.RingOptions{Timestamps: true}})
	pa, err := l.a.m.OpenPair(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	pb, err := l.b.m.OpenPair(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	toRTP := netip.AddrPortFrom(addrB4, pb.RTP.Port())
	toRTCP := netip.AddrPortFrom(addrB4, pb.RTCP.Port())

	packetizer := rtp.NewPacketizerWithOptions(1200, &codecs.G711Payloader{}, rtp.NewFixedSequencer(65500), clockRate,
		rtp.WithSSRC(ssrcA), rtp.WithPayloadType(0), rtp.WithTimestamp(1000))
	var sentRTP []*rtp.Packet
	var sentSRs, gotSRs, sentRRs, gotRRs []rtcp.Packet
	var gotRTP []*rtp.Packet
	var octets uint32
	jitter := newJitter(clockRate)
	buf := make([]byte, 1500)

	// B: read what arrived, RTP in a batch, RTCP one at a time.
	receiveB := func() {
		pb.RTP.SetReadDeadline(simlan.Past)
		for {
			n, info, err := pb.RTP.ReadPacket(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := &rtp.Packet{}
			if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
				t.Fatalf("B: RTP packet %d: %v", len(gotRTP), err)
			}
			jitter.add(p.Timestamp, info.ReceivedAt)
			gotRTP = append(gotRTP, p)
		}
		pb.RTCP.SetReadDeadline(simlan.Past)
		for {
			n, from, err := pb.RTCP.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			pkts, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				t.Fatalf("B: RTCP: %v", err)
			}
			gotSRs = append(gotSRs, pkts...)
			last := gotRTP[len(gotRTP)-1]
			rr := &rtcp.ReceiverReport{SSRC: ssrcB, Reports: []rtcp.ReceptionReport{{
				SSRC:               ssrcA,
				LastSequenceNumber: 1<<16 + uint32(last.SequenceNumber), // one wrap: 65500 + 50 packets
				Jitter:             jitter.value(),
			}}}
			raw, err := rtcp.Marshal([]rtcp.Packet{rr})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pb.RTCP.WriteToUDPAddrPort(raw, from); err != nil {
				t.Fatal(err)
			}
			sentRRs = append(sentRRs, rr)
		}
	}

	for frame := range 50 {
		payload := make([]byte, frameTicks)
		for i := range payload {
			payload[i] = byte(frame*7 + i)
		}
		for _, p := range packetizer.Packetize(payload, frameTicks) {
			raw, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pa.RTP.WriteToUDPAddrPort(raw, toRTP); err != nil {
				t.Fatal(err)
			}
			sentRTP = append(sentRTP, p)
			octets += uint32(len(p.Payload))
		}
		if frame%12 == 11 {
			sr := &rtcp.SenderReport{
				SSRC: ssrcA, NTPTime: uint64(frame) << 32, RTPTime: 1000 + uint32(frame+1)*frameTicks,
				PacketCount: uint32(len(sentRTP)), OctetCount: octets,
			}
			sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
				Source: ssrcA, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "a@mediastack"}},
			}}}
			raw, err := rtcp.Marshal([]rtcp.Packet{sr, sdes})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pa.RTCP.WriteToUDPAddrPort(raw, toRTCP); err != nil {
				t.Fatal(err)
			}
			sentSRs = append(sentSRs, sr, sdes)
		}
		l.Run(20 * time.Millisecond)
		receiveB()
	}
	l.Run(100 * time.Millisecond)
	receiveB()
	l.Run(100 * time.Millisecond)
	pa.RTCP.SetReadDeadline(simlan.Past)
	for {
		n, _, err := pa.RTCP.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			t.Fatalf("A: RTCP: %v", err)
		}
		gotRRs = append(gotRRs, pkts...)
	}

	if diff := cmp.Diff(sentRTP, gotRTP, rtpCompare...); diff != "" {
		t.Errorf("RTP packets B read (-sent +got):\n%s", diff)
	}
	if diff := cmp.Diff(sentSRs, gotSRs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("RTCP B read (-sent +got):\n%s", diff)
	}
	if diff := cmp.Diff(sentRRs, gotRRs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("RTCP A read (-sent +got):\n%s", diff)
	}
	if len(sentRRs) != 4 || jitter.value() == 0 {
		t.Errorf("%d receiver reports, jitter %d: want 4, and the link's jitter seen", len(sentRRs), jitter.value())
	}
	if st := pa.RTP.Stats().Send; st.FallbackTotal() != 1 {
		t.Errorf("A's RTP sends: %+v: want only the first through netstack", st)
	}
	// RTCP goes to peers netstack knows by then (from RTP's resolution, or
	// the peer's ARP request): fast from the first report (issue 12).
	for name, p := range map[string]*mediaport.Port{"A's RTCP": pa.RTCP, "B's RTCP": pb.RTCP} {
		if st := p.Stats().Send; st.FallbackTotal() != 0 {
			t.Errorf("%s sends: %+v: want every one fast", name, st)
		}
	}
	if st := l.b.m.Stats().Receive; st.FastDelivered != uint64(len(sentRTP)+4) || st.NetstackDelivered != 0 {
		t.Errorf("B's receive counters %+v: want every datagram fast", st)
	}
}

// jitter is RFC 3550's interarrival jitter estimate (section 6.4.1, A.8).
type jitter struct {
	rate    float64
	j       float64
	prevD   float64
	started bool
}

func newJitter(clockRate int) *jitter { return &jitter{rate: float64(clockRate)} }

func (j *jitter) add(ts uint32, at time.Time) {
	arrival := float64(at.UnixNano()) * j.rate / 1e9
	d := arrival - float64(ts)
	if j.started {
		diff := d - j.prevD
		if diff < 0 {
			diff = -diff
		}
		j.j += (diff - j.j) / 16
	}
	j.prevD, j.started = d, true
}

func (j *jitter) value() uint32 { return uint32(j.j) }
