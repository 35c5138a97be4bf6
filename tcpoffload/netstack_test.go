package tcpoffload_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/sim"
	mstack "github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

var (
	senderMAC   = tcpip.LinkAddress("\x02\x00\x5e\x00\x53\x02")
	receiverMAC = tcpip.LinkAddress("\x02\x00\x5e\x00\x53\x01")
)

// Segment sizes with the TCP timestamp option on a 1500-byte MTU.
const (
	mss4 = 1500 - header.IPv4MinimumSize - header.TCPMinimumSize - 12
	mss6 = 1500 - header.IPv6MinimumSize - header.TCPMinimumSize - 12
)

// transferCase is one TCP transfer from a sender stack to a receiver stack
// on a simulated wire.
type transferCase struct {
	v6       bool
	dfClear  bool // the sender turns path MTU discovery off: IPv4 DF clear
	size     int  // bytes the sender writes, then it closes
	chunk    int  // bytes per application write (0: all at once)
	loss     float64
	reorder  float64 // probability the sender's wire holds a frame back 2ms
	maxLarge int     // the sender's cap on large packets (0: the default)
}

func (c transferCase) String() string {
	return fmt.Sprintf("v6=%v/dfClear=%v/size=%d/chunk=%d/loss=%v/reorder=%v/cap=%d", c.v6, c.dfClear, c.size, c.chunk, c.loss, c.reorder, c.maxLarge)
}

// sender is how the sending stack's link takes TCP from netstack.
type sender int

const (
	perMSS      sender = iota // no GSO: netstack builds every MSS segment
	gvisorBatch               // netstack's own software GSO (GVisorGSOSupported)
	softOffload               // host GSO, cut by the link's soft offload
)

func (s sender) String() string { return [...]string{"per-MSS", "gvisor-batch", "soft"}[s] }

// gvisorGSOLink makes netstack segment in software itself: with
// GVisorGSOSupported it builds large segments as for host GSO, then cuts
// each into MSS-sized packets (sendTCPBatch), every one through IP and the
// link. Its TCP sender makes the same decisions as with host GSO.
type gvisorGSOLink struct {
	nested.Endpoint
	maxSize uint32
}

func (l *gvisorGSOLink) SupportedGSO() tcpipstack.SupportedGSO { return tcpipstack.GVisorGSOSupported }
func (l *gvisorGSOLink) GSOMaxSize() uint32                    { return l.maxSize }

// trace is what a transfer put on the wire.
type trace struct {
	frames   [][]byte // every frame the sender sent, as the receiver got it
	received []byte
	engine   *tcpoffload.Engine
}

// runTransfer runs c with the sender's link of the given kind and records
// every frame the sender puts on the wire. The same seed gives the same run.
func runTransfer(t *testing.T, c transferCase, kind sender) trace {
	t.Helper()
	clock := sim.NewClock()
	network, err := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	mode := tcpoffload.Off
	if kind == softOffload {
		mode = tcpoffload.Soft
	}
	engine, err := tcpoffload.New(tcpoffload.Options{Mode: mode, MaxLargePacket: c.maxLarge, Clock: network.Clock()})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := network.NewEndpoint(sim.EndpointOptions{MAC: senderMAC,
		TCPOffload:  engine,
		Impairments: sim.Impairments{Delay: time.Millisecond, Loss: c.loss, Reorder: c.reorder, ReorderDelay: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var txLink tcpipstack.LinkEndpoint = tx
	if kind == gvisorBatch {
		g := &gvisorGSOLink{maxSize: uint32(c.maxLarge)}
		if g.maxSize == 0 {
			g.maxSize = tcpoffload.DefaultMaxLargePacket
		}
		g.Init(tx, g)
		txLink = g
	}
	rx, err := network.NewEndpoint(sim.EndpointOptions{MAC: receiverMAC, Impairments: sim.Impairments{Delay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	tr := trace{engine: engine}
	rx.SetFrameHook(func(f []byte) link.Verdict {
		if header.Ethernet(f).SourceAddress() == senderMAC {
			tr.frames = append(tr.frames, append([]byte(nil), f...))
		}
		return link.Pass
	})
	sndr, err := mstack.New(mstack.Options{NICs: []mstack.NICOptions{{Name: "tx", Link: txLink, Addrs: []string{"198.51.100.2/24", "2001:db8::2/64"}}}, Clock: clock, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sndr.Close)
	rcvr, err := mstack.New(mstack.Options{NICs: []mstack.NICOptions{{Name: "rx", Link: rx, Addrs: []string{"198.51.100.1/24", "2001:db8::1/64"}}}, Clock: clock, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcvr.Close)
	clock.AddSettler(sndr.Settle)
	clock.AddSettler(rcvr.Settle)

	dst := netip.MustParseAddrPort("198.51.100.1:8080")
	proto := header.IPv4ProtocolNumber
	if c.v6 {
		dst = netip.MustParseAddrPort("[2001:db8::1]:8080")
		proto = header.IPv6ProtocolNumber
	}
	// Let IPv6 duplicate address detection finish before connecting.
	network.Run(3 * time.Second)

	var lwq, cwq waiter.Queue
	l, terr := rcvr.Netstack().NewEndpoint(tcp.ProtocolNumber, proto, &lwq)
	if terr != nil {
		t.Fatal(terr)
	}
	t.Cleanup(l.Close)
	if err := l.Bind(tcpip.FullAddress{Port: dst.Port()}); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	cl, terr := sndr.Netstack().NewEndpoint(tcp.ProtocolNumber, proto, &cwq)
	if terr != nil {
		t.Fatal(terr)
	}
	t.Cleanup(cl.Close)
	if c.dfClear {
		if err := cl.SetSockOptInt(tcpip.MTUDiscoverOption, int(tcpip.PMTUDiscoveryDont)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Connect(mstack.FullAddress(dst)); err != nil {
		if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
			t.Fatal(err)
		}
	}
	payload := make([]byte, c.size)
	for i := range payload {
		payload[i] = byte(i*7 + i>>8)
	}
	chunk := c.chunk
	if chunk == 0 {
		chunk = c.size
	}
	var server tcpip.Endpoint
	var got bytes.Buffer
	sent, shut := 0, false
	for step := 0; step < 20000 && got.Len() < c.size; step++ {
		if server == nil {
			if ep, _, err := l.Accept(nil); err == nil {
				server = ep
				t.Cleanup(ep.Close)
			}
		}
		for sent < c.size {
			end := min(sent+chunk, c.size)
			n, err := cl.Write(bytes.NewReader(payload[sent:end]), tcpip.WriteOptions{})
			sent += int(n)
			if err != nil {
				break
			}
		}
		if sent == c.size && !shut {
			shut = true
			cl.Shutdown(tcpip.ShutdownWrite)
		}
		if server != nil {
			for {
				res, err := server.Read(&got, tcpip.ReadOptions{})
				if err != nil || res.Count == 0 {
					break
				}
			}
		}
		network.Run(time.Millisecond)
	}
	// Let the FIN and the last ACKs go by.
	network.Run(time.Second)
	tr.received = got.Bytes()
	if !bytes.Equal(tr.received, payload) {
		t.Fatalf("%v, %v sender: %d of %d bytes arrived intact", c, kind, len(tr.received), c.size)
	}
	return tr
}

// namedDifference normalises a header field in which a frame cut by the
// soft offload may legitimately differ from netstack's own segment, after
// checking what can be checked of it.
type namedDifference func(t *testing.T, f []byte)

// ipv4IDWithDFClear: with DF clear, netstack draws a random IPv4 ID per
// packet; the template numbers a large packet's frames consecutively from
// the session's counter (as Linux's TSO does), so they are unique without
// the random source. The ID and the IPv4 header checksum (which covers it)
// differ; the checksum is checked valid before both are zeroed.
func ipv4IDWithDFClear(t *testing.T, f []byte) {
	if header.Ethernet(f).Type() != header.IPv4ProtocolNumber {
		return
	}
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	if !ip.IsChecksumValid() {
		t.Errorf("frame with an invalid IPv4 header checksum: % x", f[:min(len(f), 64)])
	}
	if ip.Flags()&header.IPv4FlagDontFragment == 0 {
		ip.SetID(0)
		ip.SetChecksum(0)
	}
}

// pshOnEverySegment: netstack's software GSO (sendTCPBatch) copies the
// large segment's flags onto every MSS segment, so PSH appears on each;
// its per-MSS sender, Linux's TSO and the template put PSH on the last
// segment of the large packet only. PSH is cleared (and the TCP checksum,
// which covers it, checked, then zeroed) in both.
func pshOnEverySegment(t *testing.T, f []byte) {
	if err := checkChecksums(f); err != nil {
		t.Error(err)
	}
	tcpHdr, ok := tcpOf(f)
	if !ok || len(tcpHdr.Payload()) == 0 {
		return
	}
	tcpHdr.SetFlags(uint8(tcpHdr.Flags() &^ header.TCPFlagPsh))
	tcpHdr.SetChecksum(0)
}

// normalise copies frames and applies the named differences to each.
func normalise(t *testing.T, frames [][]byte, diffs ...namedDifference) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = append([]byte(nil), f...)
		for _, d := range diffs {
			d(t, out[i])
		}
	}
	return out
}

// compareTraces compares two runs' frames one by one, showing at most
// three differing frames.
func compareTraces(t *testing.T, wantKind sender, want, got [][]byte) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("the %v sender sent %d frames, the soft offload %d", wantKind, len(want), len(got))
	}
	shown := 0
	for i := range min(len(want), len(got)) {
		if diff := cmp.Diff(want[i], got[i]); diff != "" {
			t.Errorf("frame %d, %v sender vs soft offload (-want +got):\n%s", i, wantKind, diff)
			if shown++; shown == 3 {
				t.Fatal("giving up after 3 differing frames")
			}
		}
	}
}

// checkSoftRun checks what every soft run must show: large packets cut,
// partial checksums completed, every checksum valid.
func checkSoftRun(t *testing.T, tr trace) {
	t.Helper()
	st := tr.engine.Stats()
	if st.LargePackets == 0 || st.Frames <= st.LargePackets {
		t.Errorf("soft mode cut no large packets: %+v", st)
	}
	if st.PartialsCompleted == 0 {
		t.Errorf("soft mode completed no partial checksums (pure ACKs, short segments): %+v", st)
	}
	if st.Unsegmentable != 0 {
		t.Errorf("soft mode dropped %d large packets: %+v", st.Unsegmentable, st)
	}
	for i, f := range tr.frames {
		if err := checkChecksums(f); err != nil {
			t.Errorf("frame %d: %v", i, err)
		}
	}
}

// TestSoftSegmentationMatchesNetstack: the frames the soft offload cuts
// from netstack's large packets are, byte for byte, the frames netstack
// itself cuts from the same large packets with its software GSO, over whole
// transfers (many flights, short last segments, IPv6, DF clear, loss and
// retransmissions, a cap), except the fields pshOnEverySegment and
// ipv4IDWithDFClear name; and every checksum is valid. netstack's TCP
// sender builds large segments in both runs and makes the same decisions,
// so the traces line up frame for frame.
func TestSoftSegmentationMatchesNetstack(t *testing.T) {
	for _, c := range []transferCase{
		{size: 10 * mss4},
		{size: 256*1024 + 517},
		{size: 200 * 1024, chunk: 1000, v6: true},
		{size: 100*1024 + 3, dfClear: true},
		{size: 300 * 1024, chunk: 7777, loss: 0.03},
		{size: 150 * 1024, v6: true, loss: 0.03},
		{size: 300 * 1024, chunk: 7777, loss: 0.01, reorder: 0.02},
		{size: 200 * 1024, maxLarge: 8 * 1024},
	} {
		t.Run(c.String(), func(t *testing.T) {
			want := runTransfer(t, c, gvisorBatch)
			got := runTransfer(t, c, softOffload)
			checkSoftRun(t, got)
			compareTraces(t, gvisorBatch,
				normalise(t, want.frames, pshOnEverySegment, ipv4IDWithDFClear),
				normalise(t, got.frames, pshOnEverySegment, ipv4IDWithDFClear))
			if c.dfClear {
				checkDistinctIDs(t, got.frames)
			}
		})
	}
}

// TestSoftSegmentationMatchesPerMSS: where netstack's per-MSS sender (no
// GSO at all) chooses the same segment boundaries as its GSO sender, the
// soft offload's frames equal its frames byte for byte, PSH included (only
// ipv4IDWithDFClear differs): a flight that fits the initial window,
// written at once. Over longer transfers the two senders choose different
// boundaries (the GSO sender neither splits one application write to merge
// it with the next nor rounds to the MSS where the window or its limit of
// GSOMaxSize-161 cuts), which is netstack's choice, not the offload's:
// TestSoftSegmentationMatchesNetstack compares those.
func TestSoftSegmentationMatchesPerMSS(t *testing.T) {
	for _, c := range []transferCase{
		{size: 10 * mss4},
		{size: 7*mss4 + 100},
		{size: 9*mss6 + 1, v6: true},
		{size: 10*mss4 - 1, dfClear: true},
	} {
		t.Run(c.String(), func(t *testing.T) {
			want := runTransfer(t, c, perMSS)
			got := runTransfer(t, c, softOffload)
			checkSoftRun(t, got)
			compareTraces(t, perMSS, normalise(t, want.frames, ipv4IDWithDFClear), normalise(t, got.frames, ipv4IDWithDFClear))
		})
	}
}

// TestSoftSegmentationCarriesTheStream: every frame the soft offload sends
// fits the MTU and carries exactly the stream's bytes at its sequence
// number, retransmissions included; FIN goes out.
func TestSoftSegmentationCarriesTheStream(t *testing.T) {
	for _, c := range []transferCase{
		{size: 256*1024 + 517},
		{size: 300 * 1024, chunk: 7777, loss: 0.03},
		{size: 150 * 1024, v6: true, loss: 0.03, maxLarge: 20000},
		{size: 300 * 1024, v6: true, loss: 0.01, reorder: 0.02},
	} {
		t.Run(c.String(), func(t *testing.T) {
			tr := runTransfer(t, c, softOffload)
			checkSoftRun(t, tr)
			var isn uint32
			fins := 0
			for i, f := range tr.frames {
				if len(f) > header.EthernetMinimumSize+1500 {
					t.Errorf("frame %d: %d bytes, more than the MTU allows", i, len(f))
				}
				tcpHdr, ok := tcpOf(f)
				if !ok {
					continue
				}
				if tcpHdr.Flags()&header.TCPFlagSyn != 0 {
					isn = tcpHdr.SequenceNumber() + 1
					continue
				}
				if tcpHdr.Flags()&header.TCPFlagFin != 0 {
					fins++
				}
				p := tcpHdr.Payload()
				off := int(tcpHdr.SequenceNumber() - isn)
				if len(p) > 0 && (off < 0 || off+len(p) > len(tr.received) || !bytes.Equal(p, tr.received[off:off+len(p)])) {
					t.Fatalf("frame %d (stream offset %d, %d bytes) does not carry the stream's bytes there", i, off, len(p))
				}
			}
			if fins == 0 {
				t.Error("no FIN sent")
			}
		})
	}
}

// tcpOf returns the TCP segment (header and payload) of a frame.
func tcpOf(f []byte) (header.TCP, bool) {
	l3 := f[header.EthernetMinimumSize:]
	switch header.Ethernet(f).Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(l3)
		if ip.TransportProtocol() == header.TCPProtocolNumber {
			return header.TCP(l3[ip.HeaderLength():ip.TotalLength()]), true
		}
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(l3)
		if ip.TransportProtocol() == header.TCPProtocolNumber {
			return header.TCP(l3[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]), true
		}
	}
	return nil, false
}

// checkChecksums validates the IP and TCP checksums of a TCP frame (other
// frames pass).
func checkChecksums(f []byte) error {
	l3 := f[header.EthernetMinimumSize:]
	var src, dst tcpip.Address
	switch header.Ethernet(f).Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(l3)
		if !ip.IsChecksumValid() {
			return fmt.Errorf("bad IPv4 header checksum")
		}
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(l3)
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	}
	seg, ok := tcpOf(f)
	if !ok {
		return nil
	}
	payload := seg[seg.DataOffset():]
	if !seg.IsChecksumValid(src, dst, checksum.Checksum(payload, 0), uint16(len(payload))) {
		return fmt.Errorf("bad TCP checksum (flags %v, %d payload bytes)", seg.Flags(), len(payload))
	}
	return nil
}

// checkDistinctIDs checks that IPv4 data frames sent close together (DF
// clear) carry distinct IDs.
func checkDistinctIDs(t *testing.T, frames [][]byte) {
	seen := map[uint16]int{}
	for i, f := range frames {
		seg, ok := tcpOf(f)
		if !ok || header.Ethernet(f).Type() != header.IPv4ProtocolNumber || len(seg.Payload()) == 0 {
			continue
		}
		ip := header.IPv4(f[header.EthernetMinimumSize:])
		if ip.Flags()&header.IPv4FlagDontFragment != 0 {
			t.Fatalf("frame %d has DF set; the case wants it clear", i)
		}
		if j, dup := seen[ip.ID()]; dup && i-j < 1000 {
			t.Errorf("frames %d and %d share IPv4 ID %d", j, i, ip.ID())
		}
		seen[ip.ID()] = i
	}
}
