package ethlink_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/vnet"
	mstack "github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

// written is one packet a loopDevice was given: its virtio-net header (zero
// for WriteFrames) and the frame as written, before any checksum
// completion.
type written struct {
	hdr   vnet.Hdr
	frame []byte
}

// loopDevice is one end of an in-memory wire that behaves like a TAP with
// IFF_VNET_HDR towards a local socket: a packet marked NEEDS_CSUM has its
// checksum completed, and a large packet is delivered whole, unsplit. It
// records everything written. Deliveries run on a goroutine of the wire, so
// a write never re-enters the writer's stack.
type loopDevice struct {
	out  chan []byte
	mu   sync.Mutex
	recs []written
}

func (d *loopDevice) WriteFrames(frames [][]byte) (int, error) {
	for _, f := range frames {
		d.record(vnet.Hdr{}, f)
		d.out <- append([]byte(nil), f...)
	}
	return len(frames), nil
}

func (d *loopDevice) WriteVnet(pkts []vnet.Packet) (int, error) {
	for _, p := range pkts {
		var f []byte
		for _, part := range p.Parts {
			f = append(f, part...)
		}
		d.record(p.Hdr, f)
		if p.Hdr.Flags&vnet.FlagNeedsCsum != 0 {
			if err := vnet.CompletePartial(f, int(p.Hdr.CsumStart), int(p.Hdr.CsumOffset)); err != nil {
				return 0, err
			}
		}
		d.out <- f
	}
	return len(pkts), nil
}

func (d *loopDevice) record(h vnet.Hdr, f []byte) {
	d.mu.Lock()
	d.recs = append(d.recs, written{h, append([]byte(nil), f...)})
	d.mu.Unlock()
}

func (d *loopDevice) records() []written {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]written(nil), d.recs...)
}

func (*loopDevice) Close() error { return nil }

// pair is two stacks joined by a loop wire; a's link has offload mode modeA,
// b's modeB.
type pair struct {
	a, b       *mstack.Stack
	devA, devB *loopDevice
	epA, epB   *ethlink.Endpoint
}

// engineOf returns the offload engine of an endpoint with offload on.
func engineOf(ep *ethlink.Endpoint) *tcpoffload.Engine {
	return ep.TCPOffload().(*tcpoffload.Engine)
}

func newPair(t *testing.T, modeA, modeB tcpoffload.Mode, capA int) *pair {
	t.Helper()
	p := &pair{devA: &loopDevice{out: make(chan []byte, 1024)}, devB: &loopDevice{out: make(chan []byte, 1024)}}
	mk := func(dev *loopDevice, mac tcpip.LinkAddress, mode tcpoffload.Mode, maxLarge int) *ethlink.Endpoint {
		eng, err := tcpoffload.New(tcpoffload.Options{Mode: mode, MaxLargePacket: maxLarge})
		if err != nil {
			t.Fatal(err)
		}
		ep, err := ethlink.New(ethlink.Options{Device: dev, MAC: mac, MTU: 1500, TCPOffload: eng})
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
	p.epA = mk(p.devA, ourMAC, modeA, capA)
	p.epB = mk(p.devB, peerMAC, modeB, 0)
	var wg sync.WaitGroup
	for _, w := range []struct {
		from *loopDevice
		to   *ethlink.Endpoint
	}{{p.devA, p.epB}, {p.devB, p.epA}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range w.from.out {
				w.to.DeliverFrame(f)
			}
		}()
	}
	var err error
	if p.a, err = mstack.New(mstack.Options{NICs: []mstack.NICOptions{{Name: "a", Link: p.epA, Addrs: []string{"198.51.100.2/24", "2001:db8::2/64"}}}}); err != nil {
		t.Fatal(err)
	}
	if p.b, err = mstack.New(mstack.Options{NICs: []mstack.NICOptions{{Name: "b", Link: p.epB, Addrs: []string{"198.51.100.1/24", "2001:db8::1/64"}}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
		close(p.devA.out)
		close(p.devB.out)
		wg.Wait()
	})
	return p
}

// transfer sends size bytes from stack a to stack b over TCP and returns
// the connection's local and remote addresses on a's side. setup runs on
// a's connection before any data.
func (p *pair) transfer(t *testing.T, dst netip.AddrPort, size int, setup func(local, remote netip.AddrPort)) {
	t.Helper()
	l, err := p.b.ListenTCP(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*13 + i>>10)
	}
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	// IPv6 addresses are tentative for about a second (DAD).
	var conn interface {
		io.WriteCloser
		LocalAddr() interface{ String() string }
	}
	_ = conn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // generous for a loaded machine
	defer cancel()
	var c io.WriteCloser
	var local, remote string
	for {
		cc, err := p.a.DialTCP(ctx, dst)
		if err == nil {
			c, local, remote = cc, cc.LocalAddr().String(), cc.RemoteAddr().String()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("dial %v: %v", dst, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if setup != nil {
		setup(netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote))
	}
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case b := <-got:
		if !bytes.Equal(b, payload) {
			t.Fatalf("%d of %d bytes arrived intact", len(b), size)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("transfer did not finish in 30s")
	}
}

// TestVnetWritesLargePacketsOnce: in vnet mode a large TCP packet is written
// once, marked GSO (TCPv4 or TCPv6, gso_size = MSS) and NEEDS_CSUM with the
// TCP header as csum_start; every TCP packet netstack left partial is marked
// NEEDS_CSUM; nothing else is. A receiver that completes the checksums and
// takes the large packets whole (as the kernel's local delivery does) gets
// the stream intact.
func TestVnetWritesLargePacketsOnce(t *testing.T) {
	for _, tc := range []struct {
		dst      string
		gsoType  uint8
		l3       int
		hdrBytes int
	}{
		{"198.51.100.1:8080", vnet.GSOTCPv4, header.IPv4MinimumSize, 14 + 20 + 32},
		{"[2001:db8::1]:8080", vnet.GSOTCPv6, header.IPv6MinimumSize, 14 + 40 + 32},
	} {
		t.Run(tc.dst, func(t *testing.T) {
			p := newPair(t, tcpoffload.Vnet, tcpoffload.Off, 0)
			p.transfer(t, netip.MustParseAddrPort(tc.dst), 4<<20, nil)
			sessions := engineOf(p.epA).Sessions()
			if len(sessions) != 1 {
				t.Fatalf("sessions: %+v", sessions)
			}
			// netstack's MSS for the connection: the peer's, less the room
			// its options may take.
			mss := uint16(sessions[0].MSS)
			large := 0
			for i, w := range p.devA.records() {
				eth := header.Ethernet(w.frame)
				isTCP := (eth.Type() == header.IPv4ProtocolNumber && header.IPv4(w.frame[14:]).TransportProtocol() == header.TCPProtocolNumber) ||
					(eth.Type() == header.IPv6ProtocolNumber && header.IPv6(w.frame[14:]).TransportProtocol() == header.TCPProtocolNumber)
				h := w.hdr
				if !isTCP {
					if h != (vnet.Hdr{}) {
						t.Errorf("packet %d (not TCP) has virtio-net header %+v", i, h)
					}
					continue
				}
				syn := header.TCP(w.frame[14+tc.l3:]).Flags()&header.TCPFlagSyn != 0
				if syn {
					continue // netstack sends SYNs without GSO, checksum complete
				}
				if h.Flags != vnet.FlagNeedsCsum || int(h.CsumStart) != 14+tc.l3 || h.CsumOffset != header.TCPChecksumOffset || int(h.HdrLen) != tc.hdrBytes {
					t.Fatalf("packet %d: virtio-net header %+v, want NEEDS_CSUM from %d, offset 16, headers %d", i, h, 14+tc.l3, tc.hdrBytes)
				}
				// A packet carrying more than one segment is a large one.
				if payload := len(w.frame) - int(h.HdrLen); payload > int(mss) {
					large++
					if h.GSOType != tc.gsoType || h.GSOSize != mss || mss > 1460 {
						t.Fatalf("large packet %d (%d bytes): GSO type %d size %d, want %d and the MSS %d", i, len(w.frame), h.GSOType, h.GSOSize, tc.gsoType, mss)
					}
				} else if h.GSOType != vnet.GSONone {
					t.Errorf("packet %d with %d payload bytes (MSS %d) marked GSO %+v", i, payload, mss, h)
				}
			}
			st := engineOf(p.epA).Stats()
			if large == 0 || st.LargePackets != uint64(large) {
				t.Errorf("%d large packets written, engine counted %+v", large, st)
			}
			t.Logf("%d large packets, %+v", large, st)
		})
	}
}

// TestVnetSessionCap: a session's cap splits its large packets into smaller
// ones, each with its own headers from the template and a partial checksum
// that completes right (the receiver would drop them otherwise).
func TestVnetSessionCap(t *testing.T) {
	p := newPair(t, tcpoffload.Vnet, tcpoffload.Off, 0)
	const limit = 8000
	p.transfer(t, netip.MustParseAddrPort("198.51.100.1:8081"), 2<<20, func(local, remote netip.AddrPort) {
		if err := engineOf(p.epA).SetSessionCap(local, remote, limit); err != nil {
			t.Fatal(err)
		}
	})
	for i, w := range p.devA.records() {
		if len(w.frame)-header.EthernetMinimumSize > limit {
			t.Fatalf("packet %d: %d bytes from the IP header on, over the session's cap of %d", i, len(w.frame)-14, limit)
		}
	}
	sessions := engineOf(p.epA).Sessions()
	if len(sessions) != 1 || sessions[0].CapSplits == 0 || sessions[0].Cap != limit {
		t.Errorf("sessions: %+v", sessions)
	}
}

// TestSoftCompletesPureACKs: a stack in soft mode that only receives sends
// pure ACKs, every one left partial by netstack; each leaves the link with
// its checksum complete.
func TestSoftCompletesPureACKs(t *testing.T) {
	p := newPair(t, tcpoffload.Off, tcpoffload.Soft, 0)
	p.transfer(t, netip.MustParseAddrPort("198.51.100.1:8082"), 1<<20, nil)
	acks := 0
	for i, w := range p.devB.records() {
		if header.Ethernet(w.frame).Type() != header.IPv4ProtocolNumber {
			continue
		}
		ip := header.IPv4(w.frame[14:])
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			continue
		}
		seg := header.TCP(ip.Payload())
		if !seg.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(seg.Payload(), 0), uint16(len(seg.Payload()))) {
			t.Errorf("packet %d (flags %v): bad TCP checksum", i, seg.Flags())
		}
		if seg.Flags()&header.TCPFlagSyn == 0 {
			acks++
		}
	}
	st := engineOf(p.epB).Stats()
	if acks == 0 || st.PartialsCompleted != uint64(acks) {
		t.Errorf("%d ACKs sent, %d partial checksums completed", acks, st.PartialsCompleted)
	}
}

// largePacketBuffer builds, as netstack does with host GSO, a TCP packet of
// payloadLen bytes with one IPv4 and TCP header, a partial checksum and
// GSO options for mss.
func largePacketBuffer(payloadLen, mss int) *tcpipstack.PacketBuffer {
	payload := make([]byte, payloadLen)
	pkt := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{
		ReserveHeaderBytes: 14 + 20 + 32,
		Payload:            buffer.MakeWithData(payload),
	})
	src, dst := tcpip.AddrFrom4([4]byte{198, 51, 100, 2}), tcpip.AddrFrom4([4]byte{198, 51, 100, 1})
	tcp := header.TCP(pkt.TransportHeader().Push(32))
	tcp.Encode(&header.TCPFields{SrcPort: 80, DstPort: 4000, SeqNum: 1, AckNum: 1, DataOffset: 32, Flags: header.TCPFlagAck, WindowSize: 100})
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(32+payloadLen)))
	ip := header.IPv4(pkt.NetworkHeader().Push(20))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(20 + 32 + payloadLen), TTL: 64, Protocol: 6, SrcAddr: src, DstAddr: dst, Flags: header.IPv4FlagDontFragment})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.Ethernet(pkt.LinkHeader().Push(14)).Encode(&header.EthernetFields{SrcAddr: ourMAC, DstAddr: peerMAC, Type: header.IPv4ProtocolNumber})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	pkt.GSOOptions = tcpipstack.GSO{Type: tcpipstack.GSOTCPv4, NeedsCsum: true, CsumOffset: 16, MSS: uint16(mss), L3HdrLen: 20, MaxSize: 65536}
	return pkt
}

// countingDevice counts frames, vnet packets and write calls without
// keeping them.
type countingDevice struct{ frames, vnet, calls int }

func (d *countingDevice) WriteFrames(f [][]byte) (int, error) {
	d.frames += len(f)
	d.calls++
	return len(f), nil
}

func (d *countingDevice) WriteVnet(p []vnet.Packet) (int, error) {
	d.vnet += len(p)
	d.calls++
	return len(p), nil
}
func (*countingDevice) Close() error { return nil }

// TestOffloadWritesAllocateNothing: once warmed up, writing a large packet
// in soft mode (cut into frames, in bursts under a session cap) or vnet mode
// (one write, or split by a session cap) allocates nothing.
func TestOffloadWritesAllocateNothing(t *testing.T) {
	for _, tc := range []struct {
		mode       tcpoffload.Mode
		sessionCap int
		frames     int // written per large packet
		calls      int // device writes per large packet
	}{
		{tcpoffload.Soft, 0, 45, 1},
		{tcpoffload.Soft, 10000, 45, 8}, // bursts of 6 segments (8688 bytes)
		{tcpoffload.Vnet, 0, 1, 1},
		{tcpoffload.Vnet, 10000, 8, 1}, // parts of 6 segments, one WriteVnet
	} {
		t.Run(fmt.Sprintf("%v/cap=%d", tc.mode, tc.sessionCap), func(t *testing.T) {
			eng, _ := tcpoffload.New(tcpoffload.Options{Mode: tc.mode})
			dev := &countingDevice{}
			ep, err := ethlink.New(ethlink.Options{Device: dev, MAC: ourMAC, MTU: 1500, TCPOffload: eng})
			if err != nil {
				t.Fatal(err)
			}
			if tc.sessionCap != 0 {
				_ = eng.SetSessionCap(netip.MustParseAddrPort("198.51.100.2:80"), netip.MustParseAddrPort("198.51.100.1:4000"), tc.sessionCap)
			}
			pkt := largePacketBuffer(45*1448, 1448)
			defer pkt.DecRef()
			var list tcpipstack.PacketBufferList
			list.PushBack(pkt)
			write := func() {
				if n, err := ep.WritePackets(list); n != 1 || err != nil {
					t.Fatalf("WritePackets = %d, %v", n, err)
				}
			}
			write()
			before, calls := dev.frames+dev.vnet, dev.calls
			write()
			if got := dev.frames + dev.vnet - before; got != tc.frames {
				t.Errorf("one large packet became %d frames or packets, want %d", got, tc.frames)
			}
			if got := dev.calls - calls; got != tc.calls {
				t.Errorf("one large packet took %d device writes, want %d", got, tc.calls)
			}
			if allocs := testing.AllocsPerRun(100, write); allocs != 0 {
				t.Errorf("%v allocations per large packet, want 0", allocs)
			}
		})
	}
}

func TestVnetNeedsAVnetDevice(t *testing.T) {
	eng, _ := tcpoffload.New(tcpoffload.Options{Mode: tcpoffload.Vnet})
	if _, err := ethlink.New(ethlink.Options{Device: newDevice(), MAC: ourMAC, MTU: 1500, TCPOffload: eng}); err == nil {
		t.Error("vnet mode accepted a device without virtio-net headers")
	}
	ep := newEndpoint(t, ethlink.Options{Device: newDevice(), MAC: ourMAC, MTU: 1500})
	if ep.SupportedGSO() != tcpipstack.GSONotSupported || ep.GSOMaxSize() != 0 {
		t.Errorf("with offload off: SupportedGSO %v, GSOMaxSize %d", ep.SupportedGSO(), ep.GSOMaxSize())
	}
}
