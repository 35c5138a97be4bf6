package ethlink_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/ethlink"
)

var ourMAC, peerMAC, otherMAC = frames.MAC(1), frames.MAC(2), frames.MAC(3)

// recordingDevice keeps what is written; reads come from a channel of batches.
type recordingDevice struct {
	mu      sync.Mutex
	written [][]byte
	batches chan [][]byte
	readErr error
	closed  chan struct{}
	once    sync.Once
}

func newDevice() *recordingDevice {
	return &recordingDevice{batches: make(chan [][]byte, 4), closed: make(chan struct{})}
}

func (d *recordingDevice) WriteFrames(frames [][]byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range frames {
		d.written = append(d.written, append([]byte(nil), f...))
	}
	return len(frames), nil
}

func (d *recordingDevice) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

func (d *recordingDevice) ReadFrames(bufs [][]byte, sizes []int) (int, error) {
	select {
	case b, ok := <-d.batches:
		if !ok {
			return 0, d.readErr
		}
		for i, f := range b {
			sizes[i] = copy(bufs[i], f)
		}
		return len(b), nil
	case <-d.closed:
		return 0, link.ErrClosed
	}
}

// dispatcher records what netstack would have been given.
type dispatcher struct {
	mu    sync.Mutex
	got   []delivered
	ready chan struct{}
}

type delivered struct {
	Proto   tcpip.NetworkProtocolNumber
	PktType tcpip.PacketType
	Payload string
}

func (d *dispatcher) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *tcpipstack.PacketBuffer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// The link header is consumed; the rest is the network packet.
	all := pkt.ToView().AsSlice()
	d.got = append(d.got, delivered{proto, pkt.PktType, string(all[len(pkt.LinkHeader().Slice()):])})
	if d.ready != nil {
		d.ready <- struct{}{}
	}
}

func (*dispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *tcpipstack.PacketBuffer) {}

func frame(dst tcpip.LinkAddress, proto tcpip.NetworkProtocolNumber, payload string) []byte {
	b := make([]byte, header.EthernetMinimumSize+len(payload))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: peerMAC, DstAddr: dst, Type: proto})
	copy(b[header.EthernetMinimumSize:], payload)
	return b
}

func newEndpoint(t *testing.T, opts ethlink.Options) *ethlink.Endpoint {
	t.Helper()
	if opts.Device == nil {
		opts.Device = newDevice()
	}
	if opts.MAC == "" {
		opts.MAC = ourMAC
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	ep, err := ethlink.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close(); ep.Wait() })
	return ep
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts ethlink.Options
	}{
		{"no device", ethlink.Options{MAC: ourMAC, MTU: 1500}},
		{"short MAC", ethlink.Options{Device: newDevice(), MAC: "\x02", MTU: 1500}},
		{"tiny MTU", ethlink.Options{Device: newDevice(), MAC: ourMAC, MTU: 100}},
	} {
		if _, err := ethlink.New(tc.opts); err == nil {
			t.Errorf("%s: New succeeded, want an error", tc.name)
		}
	}
}

func TestDeliverFrame(t *testing.T) {
	ep := newEndpoint(t, ethlink.Options{})
	var d dispatcher
	ep.DeliverFrame(frame(ourMAC, header.IPv4ProtocolNumber, "early")) // not attached yet
	ep.Attach(&d)
	var hooked []string
	ep.SetFrameHook(func(f []byte) link.Verdict {
		if len(f) > header.EthernetMinimumSize && string(f[header.EthernetMinimumSize:]) == "fast" {
			hooked = append(hooked, "fast")
			return link.Handled
		}
		return link.Pass
	})
	for _, f := range [][]byte{
		frame(ourMAC, header.IPv4ProtocolNumber, "fast"),
		frame(ourMAC, header.IPv4ProtocolNumber, "unicast"),
		frame(header.EthernetBroadcastAddress, header.ARPProtocolNumber, "broadcast"),
		frame("\x33\x33\x00\x00\x00\x01", header.IPv6ProtocolNumber, "multicast"),
		frame(otherMAC, header.IPv4ProtocolNumber, "other host"),
		frame(ourMAC, header.IPv4ProtocolNumber, "")[:10],
	} {
		ep.DeliverFrame(f)
	}
	want := []delivered{
		{header.IPv4ProtocolNumber, tcpip.PacketHost, "unicast"},
		{header.ARPProtocolNumber, tcpip.PacketBroadcast, "broadcast"},
		{header.IPv6ProtocolNumber, tcpip.PacketMulticast, "multicast"},
	}
	if diff := cmp.Diff(want, d.got); diff != "" {
		t.Errorf("delivered to netstack (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fast"}, hooked); diff != "" {
		t.Errorf("hook took (-want +got):\n%s", diff)
	}
	st := &ep.Stats
	if got := []uint64{st.RxToNetstack.Load(), st.RxDropOtherHost.Load(), st.RxDropShort.Load(), st.RxDropDetached.Load()}; !cmp.Equal(got, []uint64{3, 1, 1, 1}) {
		t.Errorf("to netstack, other host, short, detached = %v, want [3 1 1 1]", got)
	}
	ep.SetFrameHook(nil)
	ep.DeliverFrame(frame(ourMAC, header.IPv4ProtocolNumber, "fast"))
	if n := len(d.got); n != 4 {
		t.Errorf("after removing the hook, netstack got %d frames, want 4", n)
	}
}

func TestWritePacketsFlattensEachPacket(t *testing.T) {
	dev := newDevice()
	ep := newEndpoint(t, ethlink.Options{Device: dev})
	var pkts tcpipstack.PacketBufferList
	for _, payload := range []string{"first packet", "second"} {
		pkt := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{
			ReserveHeaderBytes: int(ep.MaxHeaderLength()) + 4,
			Payload:            buffer.MakeWithData([]byte(payload)),
		})
		copy(pkt.NetworkHeader().Push(4), "net:")
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		pkt.EgressRoute.RemoteLinkAddress = peerMAC
		ep.AddHeader(pkt)
		pkts.PushBack(pkt)
	}
	if n, err := ep.WritePackets(pkts); n != 2 || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
	pkts.DecRef()
	want := [][]byte{
		frameFrom(ourMAC, "net:first packet"),
		frameFrom(ourMAC, "net:second"),
	}
	if diff := cmp.Diff(want, dev.written); diff != "" {
		t.Errorf("frames written (-want +got):\n%s", diff)
	}
	if got := ep.Stats.TxFrames.Load(); got != 2 {
		t.Errorf("TxFrames = %d, want 2", got)
	}
}

func frameFrom(src tcpip.LinkAddress, payload string) []byte {
	b := make([]byte, header.EthernetMinimumSize+len(payload))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: peerMAC, Type: header.IPv4ProtocolNumber})
	copy(b[header.EthernetMinimumSize:], payload)
	return b
}

func TestWriteAfterCloseFails(t *testing.T) {
	ep := newEndpoint(t, ethlink.Options{})
	ep.Close()
	ep.Close() // idempotent
	if _, err := ep.WriteFrames([][]byte{frameFrom(ourMAC, "x")}); !errors.Is(err, link.ErrClosed) {
		t.Errorf("WriteFrames after Close = %v, want link.ErrClosed", err)
	}
}

func TestReaderDeliversBatchesAndReportsFailureOnce(t *testing.T) {
	dev := newDevice()
	dev.readErr = errors.New("device vanished")
	var mu sync.Mutex
	var readErrs []error
	ep := newEndpoint(t, ethlink.Options{Device: dev, Reader: dev, OnReadError: func(err error) {
		mu.Lock()
		readErrs = append(readErrs, err)
		mu.Unlock()
	}})
	d := dispatcher{ready: make(chan struct{}, 8)}
	ep.Attach(&d)
	dev.batches <- [][]byte{frame(ourMAC, header.IPv4ProtocolNumber, "a"), frame(ourMAC, header.IPv4ProtocolNumber, "b")}
	for range 2 {
		select {
		case <-d.ready:
		case <-time.After(time.Minute): // a hang guard, not a timing assertion
			t.Fatal("the reader did not deliver the batch within a minute")
		}
	}
	close(dev.batches) // the next read fails
	netnstest.WaitReturn(t, "the reader after its device failed", ep.Wait)
	mu.Lock()
	defer mu.Unlock()
	if len(readErrs) != 1 || readErrs[0].Error() != "device vanished" {
		t.Errorf("OnReadError calls = %v, want one with the device's error", readErrs)
	}
	if got := ep.Stats.RxFrames.Load(); got != 2 {
		t.Errorf("RxFrames = %d, want 2", got)
	}
}

func TestCloseStopsReaderWithoutReporting(t *testing.T) {
	dev := newDevice()
	reported := make(chan error, 1)
	ep := newEndpoint(t, ethlink.Options{Device: dev, Reader: dev, OnReadError: func(err error) { reported <- err }})
	ep.Attach(&dispatcher{})
	ep.Close()
	netnstest.WaitReturn(t, "the reader after Close", ep.Wait)
	select {
	case err := <-reported:
		t.Errorf("OnReadError(%v) after Close, want no report", err)
	default:
	}
}
