package tcpoffload

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	stackAddr = netip.MustParseAddrPort("198.51.100.2:80")
	peerAddr  = netip.MustParseAddrPort("198.51.100.1:40000")
)

// inboundACK builds the frame the peer sends back: an ACK (flags) with the
// timestamp option, a window and no payload.
func inboundACK(flags header.TCPFlags, ack uint32, window uint16) []byte {
	hdr, _ := largePacket(false, false, 12, 0, flags, 0, 777)
	l3 := hdr[header.EthernetMinimumSize:]
	ip := header.IPv4(l3)
	src, dst := ip.SourceAddress(), ip.DestinationAddress()
	ip.SetSourceAddress(dst)
	ip.SetDestinationAddress(src)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(l3[header.IPv4MinimumSize:])
	sp, dp := tcp.SourcePort(), tcp.DestinationPort()
	tcp.SetSourcePort(dp)
	tcp.SetDestinationPort(sp)
	tcp.SetAckNumber(ack)
	tcp.SetWindowSize(window)
	tcp.SetChecksum(0)
	tcp.SetChecksum(^tcp.CalculateChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, dst, src, uint16(len(tcp)))))
	return hdr
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Mode: Soft, MaxLargePacket: 1000}, "MaxLargePacket 1000 out of range"},
		{Options{Mode: Vnet, MaxLargePacket: 1 << 17}, "out of range"},
		{Options{Mode: 9}, "unknown mode"},
		{Options{Mode: Soft, IdleTimeout: -1}, "negative IdleTimeout"},
	} {
		if _, err := New(tc.opts); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
	if e, err := New(Options{}); e != nil || err != nil {
		t.Errorf("New(Off) = %v, %v; want no engine, no error", e, err)
	}
	e, err := New(Options{Mode: Vnet})
	if err != nil || e.MaxLargePacket() != DefaultMaxLargePacket || e.Mode() != Vnet {
		t.Fatalf("New(Vnet) = %+v, %v", e, err)
	}
	if err := e.Attach(); err != nil {
		t.Fatal(err)
	}
	if err := e.Attach(); err == nil {
		t.Error("a second link could attach the engine")
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Off, Soft, Vnet} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("on"); err == nil {
		t.Error(`ParseMode("on") succeeded`)
	}
}

// TestACKHookRecordsAndPasses: an inbound ACK of an offloaded session is
// recorded (ACK number, window, timestamp, time) and left as it was; ACKs
// of other connections and non-TCP frames are ignored.
func TestACKHookRecordsAndPasses(t *testing.T) {
	clock := faketime.NewManualClock()
	e, err := New(Options{Mode: Soft, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := largePacket(false, false, 12, 3*1448, header.TCPFlagAck|header.TCPFlagPsh, 0, 1000)
	s, err := e.begin(hdr, 3*1448, 1448)
	if err != nil {
		t.Fatal(err)
	}
	s.sent(3*1448, 1448, 3, 1)
	clock.Advance(5 * time.Millisecond)

	ack := inboundACK(header.TCPFlagAck, 1000+1448, 333)
	before := append([]byte(nil), ack...)
	e.ObserveInbound(ack)
	if !bytes.Equal(ack, before) {
		t.Fatal("the ACK hook changed the frame")
	}
	other := inboundACK(header.TCPFlagAck, 5, 5)
	header.TCP(other[34:]).SetSourcePort(1) // another connection
	e.ObserveInbound(other)
	e.ObserveInbound([]byte("not a frame"))

	got := e.Sessions()
	want := []SessionStats{{
		Local: stackAddr, Remote: peerAddr,
		LargePackets: 1, Frames: 3, Bytes: 3 * 1448,
		MSS: 1448, SndNxt: 1000 + 3*1448,
		ACKs: 1, AckNum: 1000 + 1448, Window: 333,
		TSVal: 0x11223344, TSEcr: 0x55667788,
		LastACK: 5 * time.Millisecond, TemplateLoads: 1,
	}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
	if f := got[0].InFlight(); f != 2*1448 {
		t.Errorf("in flight %d, want %d", f, 2*1448)
	}
	if st := e.Stats(); st.ACKs != 1 || st.Sessions != 1 || st.LargePackets != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestSessionsExpire: a session that saw RST is forgotten after a short
// linger, an idle one after the idle timeout; their counts stay in Stats.
func TestSessionsExpire(t *testing.T) {
	clock := faketime.NewManualClock()
	e, err := New(Options{Mode: Soft, Clock: clock, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	send := func(port uint16) *session {
		hdr, _ := largePacket(false, false, 12, 2000, header.TCPFlagAck, 0, 1)
		header.TCP(hdr[34:]).SetSourcePort(port)
		s, err := e.begin(hdr, 2000, 1448)
		if err != nil {
			t.Fatal(err)
		}
		s.sent(2000, 1448, 2, 1)
		return s
	}
	send(80)
	send(81)
	rst := inboundACK(header.TCPFlagRst|header.TCPFlagAck, 1, 0) // to port 80
	e.ObserveInbound(rst)
	clock.Advance(10 * time.Second)
	e.sweep()
	if got := len(e.Sessions()); got != 1 {
		t.Fatalf("%d sessions after a RST and the linger, want 1", got)
	}
	clock.Advance(2 * time.Minute)
	e.sweep()
	st := e.Stats()
	if st.Sessions != 0 || st.SessionsCreated != 2 || st.LargePackets != 2 || st.Frames != 4 || st.Bytes != 4000 {
		t.Errorf("stats after both expired: %+v", st)
	}
}

// TestSessionCapChunk: a packet that fits the cap goes whole; a bigger one
// is cut into whole segments that fit (the cap counts from the IP header
// on), never less than one.
func TestSessionCapChunk(t *testing.T) {
	e, _ := New(Options{Mode: Soft, MaxLargePacket: 30000})
	hdr, _ := largePacket(false, false, 12, 60000, header.TCPFlagAck, 0, 1)
	s, err := e.begin(hdr, 60000, 1448)
	if err != nil {
		t.Fatal(err)
	}
	hl := len(hdr) - header.EthernetMinimumSize // 52
	for _, tc := range []struct{ cap, payload, want int }{
		{0, 60000, (30000 - hl) / 1448 * 1448},
		{0, 30000 - hl, 30000 - hl},
		{10000, 60000, (10000 - hl) / 1448 * 1448},
		{1280, 60000, 1448},
	} {
		if err := e.SetSessionCap(stackAddr, peerAddr, tc.cap); err != nil {
			t.Fatal(err)
		}
		if got := s.chunk(tc.payload, 1448); got != tc.want {
			t.Errorf("cap %d, %d bytes: Chunk %d, want %d", tc.cap, tc.payload, got, tc.want)
		}
	}
	if err := e.SetSessionCap(stackAddr, peerAddr, 100); err == nil {
		t.Error("a cap of 100 bytes was accepted")
	}
}

// TestTemplateRebuildsOnlyWhenStaticFieldsChange: loading a session's next
// large packet keeps the static sums; a changed TTL rebuilds them.
func TestTemplateRebuildsOnlyWhenStaticFieldsChange(t *testing.T) {
	var tmpl headerTemplate
	for i := range 3 {
		hdr, _ := largePacket(false, false, 12, 3000, header.TCPFlagAck, 0, uint32(i*3000))
		if err := tmpl.load(hdr, 3000, 1448); err != nil {
			t.Fatal(err)
		}
	}
	if tmpl.rebuilds.Load() != 1 {
		t.Errorf("%d rebuilds over three packets of one session, want 1", tmpl.rebuilds.Load())
	}
	hdr, payload := largePacket(false, false, 12, 3000, header.TCPFlagAck, 0, 9000)
	ip := header.IPv4(hdr[14:])
	ip.SetTTL(7)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	if err := tmpl.load(hdr, 3000, 1448); err != nil {
		t.Fatal(err)
	}
	if tmpl.rebuilds.Load() != 2 {
		t.Errorf("%d rebuilds after the TTL changed, want 2", tmpl.rebuilds.Load())
	}
	checkFrames(t, hdr, payload, 1448, tmpl.appendFrames(nil, [][]byte{payload}, 3000, 1448))
}

func TestLoadRejects(t *testing.T) {
	good, _ := largePacket(false, false, 12, 3000, header.TCPFlagAck, 0, 1)
	for name, mutate := range map[string]func(h []byte) []byte{
		"UDP":              func(h []byte) []byte { h[14+9] = 17; return h },
		"fragment":         func(h []byte) []byte { h[14+6] |= 0x20; return h },
		"wrong length":     func(h []byte) []byte { header.IPv4(h[14:]).SetTotalLength(100); return h },
		"payload included": func(h []byte) []byte { return append(h, 1, 2, 3, 4) },
		"truncated":        func(h []byte) []byte { return h[:40] },
		"ARP":              func(h []byte) []byte { h[12], h[13] = 8, 6; return h },
	} {
		h := mutate(append([]byte(nil), good...))
		var tmpl headerTemplate
		if err := tmpl.load(h, 3000, 1448); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
}

// TestFastPathsAllocateNothing: cutting a large packet into reused frame
// buffers and the ACK hook allocate nothing (link/vnet checks checksum
// completion).
func TestFastPathsAllocateNothing(t *testing.T) {
	e, _ := New(Options{Mode: Soft})
	hdr, payload := largePacket(false, false, 12, 45*1448, header.TCPFlagAck, 0, 1)
	parts := pieces(payload, 3)
	s, err := e.begin(hdr, len(payload), 1448)
	if err != nil {
		t.Fatal(err)
	}
	frames := s.tmpl.appendFrames(nil, parts, len(payload), 1448)
	ack := inboundACK(header.TCPFlagAck, 5000, 100)
	for name, f := range map[string]func(){
		"Begin+AppendFrames+Sent": func() {
			s, _ := e.begin(hdr, len(payload), 1448)
			frames = s.tmpl.appendFrames(frames[:0], parts, len(payload), 1448)
			s.sent(len(payload), 1448, len(frames), 1)
		},
		"ObserveInbound": func() { e.ObserveInbound(ack) },
	} {
		if allocs := testing.AllocsPerRun(100, f); allocs != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, allocs)
		}
	}
}

// BenchmarkAppendFrames cuts large packets of several sizes into frames;
// pkts/s counts frames.
func BenchmarkAppendFrames(b *testing.B) {
	for _, size := range []int{1448, 8 * 1448, 45 * 1448} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			var tmpl headerTemplate
			hdr, payload := largePacket(false, false, 12, size, header.TCPFlagAck, 0, 1)
			parts := pieces(payload, 1)
			var frames [][]byte
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				_ = tmpl.load(hdr, size, 1448)
				frames = tmpl.appendFrames(frames[:0], parts, size, 1448)
			}
			b.ReportMetric(float64(b.N*len(frames))/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// BenchmarkObserveInbound is the ACK hook's cost per inbound ACK of an
// offloaded session.
func BenchmarkObserveInbound(b *testing.B) {
	e, _ := New(Options{Mode: Soft})
	hdr, _ := largePacket(false, false, 12, 3000, header.TCPFlagAck, 0, 1)
	if _, err := e.begin(hdr, 3000, 1448); err != nil {
		b.Fatal(err)
	}
	ack := inboundACK(header.TCPFlagAck, 5000, 100)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.ObserveInbound(ack)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}
