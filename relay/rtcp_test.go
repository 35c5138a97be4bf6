package relay_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/relay"
)

// rtpPacket is an RTP packet of PT pt with 160 bytes of payload.
func rtpPacket(t *testing.T, pt uint8, seq uint16, ts, ssrc uint32) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
		Payload: make([]byte, 160)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rtcpPacket(t *testing.T, pkts ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sendBytes(t *testing.T, p *mediaport.Port, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := p.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// TestRTCPRelayed: a relay with RTCP, its ports allocated, between T1
// (RTP on 20010, RTCP on 20011) and T2, which multiplexes RTCP on 20020.
// T1's sender report leaves R from B's RTP port, T2's receiver report,
// demultiplexed, from A's RTCP port; RTP and RTCP are counted apart; the
// report gives loss, jitter and the round trip between R and T2. Deleting
// the relay gives its four ports back to the reflector.
func TestRTCPRelayed(t *testing.T) {
	l := newLAN(t)
	s := l.service(t, true)
	t1, t1c, t2 := simlan.Open(t, l.t[0], 20010), simlan.Open(t, l.t[0], 20011), simlan.Open(t, l.t[1], 20020)
	r, err := s.Create(relay.Spec{RTCP: true, Mux: [2]bool{false, true},
		Peers: [2]netip.AddrPort{ap("198.51.100.1:20010"), ap("198.51.100.3:20020")}})
	if err != nil {
		t.Fatal(err)
	}
	info := r.Info()
	if info.Ports != [2]uint16{20000, 20002} || info.Sides[0].RTCPPort != 20001 || info.Sides[1].RTCPPort != 20003 {
		t.Fatalf("allocated ports %v, RTCP %d and %d; want 20000/20001 and 20002/20003", info.Ports, info.Sides[0].RTCPPort, info.Sides[1].RTCPPort)
	}
	if st := s.Stats(); st.Reflecting != 96 {
		t.Errorf("%d ports reflecting, want 96", st.Reflecting)
	}
	a, ac, b := ap("198.51.100.2:20000"), ap("198.51.100.2:20001"), ap("198.51.100.2:20002")

	// RTP both ways: 10 packets of PT 0 from T1, one lost (seq 4).
	for seq := range uint16(10) {
		if seq != 4 {
			sendBytes(t, t1, a, rtpPacket(t, 0, 1000+seq, uint32(seq)*160, 0xaaaa))
		}
		sendBytes(t, t2, b, rtpPacket(t, 8, 2000+seq, uint32(seq)*160, 0xbbbb))
		l.Run(20 * time.Millisecond)
	}
	if got := len(simlan.Drain(t, t2)); got != 9 {
		t.Errorf("T2 received %d RTP packets, want 9", got)
	}
	if got := len(simlan.Drain(t, t1)); got != 10 {
		t.Errorf("T1 received %d RTP packets, want 10", got)
	}

	// T1's SR; T2 answers with an RR on its RTP port 15.625 ms (1024/65536
	// s) after the SR reached it. The SR left R 1 ms before reaching T2,
	// the RR takes 1 ms to R: a round trip of 2 ms.
	const ntp = 0x0123_4567_89ab_cdef
	sendBytes(t, t1c, ac, rtcpPacket(t, &rtcp.SenderReport{SSRC: 0xaaaa, NTPTime: ntp, RTPTime: 1440, PacketCount: 9, OctetCount: 9 * 160}))
	l.Run(2 * time.Millisecond)
	if diff := cmp.Diff([]string{"198.51.100.2:20002"}, from(t, t2)); diff != "" {
		t.Errorf("T2's SR came from (-want +got):\n%s", diff)
	}
	l.Run(15625 * time.Microsecond)
	sendBytes(t, t2, b, rtcpPacket(t, &rtcp.ReceiverReport{SSRC: 0xbbbb, Reports: []rtcp.ReceptionReport{{
		SSRC: 0xaaaa, FractionLost: 64, TotalLost: 1, LastSequenceNumber: 1009, Jitter: 80,
		LastSenderReport: uint32(ntp >> 16 & 0xffffffff), Delay: 1024,
	}}}))
	l.Run(20 * time.Millisecond)
	if diff := cmp.Diff([]string{"198.51.100.2:20001"}, from(t, t1c)); diff != "" {
		t.Errorf("T1's RR came from (-want +got):\n%s", diff)
	}

	info = r.Info()
	wantA := relay.StreamStats{SSRC: 0xaaaa, PayloadType: 0, ClockRate: 8000, HighestSeq: 1009, Expected: 9, Received: 8, Lost: 1}
	if diff := cmp.Diff(wantA, info.Sides[0].Stream); diff != "" {
		t.Errorf("T1's stream (-want +got):\n%s", diff)
	}
	if got := info.Sides[1].Stream; got.SSRC != 0xbbbb || got.ClockRate != 8000 || got.Lost != 0 || got.HighestSeq != 2009 || got.Jitter != 0 {
		t.Errorf("T2's stream: %+v", got)
	}
	wantRTCP := [2]relay.Counters{
		{ReceivedPackets: 1, ReceivedBytes: 28, SentPackets: 1, SentBytes: 32},
		{ReceivedPackets: 1, ReceivedBytes: 32, SentPackets: 1, SentBytes: 28},
	}
	for i := range 2 {
		if diff := cmp.Diff(wantRTCP[i], info.Sides[i].RTCP); diff != "" {
			t.Errorf("side %d's RTCP counters (-want +got):\n%s", i, diff)
		}
	}
	if got := info.Sides[1].ReceivedPackets; got != 10 {
		t.Errorf("side B counted %d RTP packets, want 10 (its RTCP apart)", got)
	}
	wantReport := relay.ReportStats{
		ReceiverReports: 1, SSRC: 0xbbbb, Source: 0xaaaa, At: info.Sides[1].Report.At,
		FractionLost: 0.25, CumulativeLost: 1, Jitter: 10 * time.Millisecond, RTT: 2 * time.Millisecond,
	}
	if diff := cmp.Diff(wantReport, info.Sides[1].Report); diff != "" || wantReport.At.IsZero() {
		t.Errorf("T2's report (-want +got):\n%s", diff)
	}
	if got := info.Sides[0].Report; got.SenderReports != 1 || got.SSRC != 0xaaaa || !got.At.IsZero() {
		t.Errorf("T1's report: %+v", got)
	}

	if _, err := s.Delete(r.ID()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Reflecting != 100 || st.RelayedRTCP.SentPackets != 2 || st.Loss.Count != 2 || st.Jitter.Count != 2 {
		t.Errorf("after Delete: %+v", st)
	}
	// The next allocation goes on from the last one.
	r, err = s.Create(relay.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Info().Ports; got != [2]uint16{20004, 20006} {
		t.Errorf("second allocation: %v, want [20004 20006]", got)
	}
}
