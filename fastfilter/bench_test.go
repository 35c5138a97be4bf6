package fastfilter_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

// benchFrames are built once and shared by every variant, so the fast and
// the netstack path receive the very same bytes.
var benchFrames = func() map[string][]byte {
	m := map[string][]byte{}
	for _, size := range []int{172, 1200} {
		p := frames.Pattern(size)
		m[fmt.Sprintf("v4/%d", size)] = v4Frame(p).Build()
		m[fmt.Sprintf("v6/%d", size)] = v6Frame(p).Build()
	}
	return m
}()

var benchVariants = []string{"v4/172", "v4/1200", "v6/172", "v6/1200"}

// receiver is a stack on a sim endpoint with the real clock (time stamps
// cost what they cost in production), no hook installed yet.
type receiver struct {
	ep *sim.Endpoint
	st *stack.Stack
}

func newReceiver(tb testing.TB) *receiver {
	tb.Helper()
	h := simlan.New(tb, simlan.Options{Seed: 1}, simlan.HostOptions{N: frames.Stack, WallClock: true}).Hosts[0]
	return &receiver{ep: h.Link, st: h.Stack}
}

// steps runs n packets through a receive path, frame in to payload out.
type steps func(n int)

// fastOptions choose how the fast path is set up.
type fastOptions struct {
	ring    fastfilter.RingOptions
	viaFunc bool // Register(ring.Receive) instead of RegisterRing(ring)
}

// fastPath installs a filter with a ring on rtpPort and returns the ring and
// the payload length a read must return.
func (r *receiver) fastPath(tb testing.TB, frame []byte, o fastOptions) (*fastfilter.Ring, int) {
	tb.Helper()
	f, err := fastfilter.New(fastfilter.Options{Stack: r.st.Netstack(), NIC: r.st.NICID(0)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Close)
	ring := newRing(tb, o.ring)
	if o.viaFunc {
		_, err = f.Register(rtpPort, rtpPort+1, ring.Receive)
	} else {
		_, err = f.RegisterRing(rtpPort, rtpPort+1, ring)
	}
	if err != nil {
		tb.Fatal(err)
	}
	r.ep.SetFrameHook(f.Hook)
	ipHeader := header.IPv4MinimumSize
	if header.IPVersion(frame[header.EthernetMinimumSize:]) == 6 {
		ipHeader = header.IPv6MinimumSize
	}
	return ring, len(frame) - header.EthernetMinimumSize - ipHeader - header.UDPMinimumSize
}

// fastSteps is the fast path a packet at a time: the frame in through the
// link, the payload out of the ring.
func (r *receiver) fastSteps(tb testing.TB, frame []byte, o fastOptions) steps {
	ring, want := r.fastPath(tb, frame, o)
	buf := make([]byte, 2048)
	return func(n int) {
		for range n {
			r.ep.DeliverFrame(frame)
			if got, _, err := ring.Read(buf, past); err != nil || got != want {
				panic(fmt.Sprintf("ring read %d, %v; want %d bytes", got, err, want))
			}
		}
	}
}

// benchBatch is how many frames a link reads in one recvmmsg and a media
// application takes in one ReadBatch.
const benchBatch = 32

// fastBatchSteps is the fast path as links and media applications run it:
// benchBatch frames delivered back to back from a link's receive buffers,
// then one ReadBatch.
func (r *receiver) fastBatchSteps(tb testing.TB, frame []byte) steps {
	ring, want := r.fastPath(tb, frame, fastOptions{})
	batch := make([][]byte, benchBatch)
	bufs := make([][]byte, benchBatch)
	for i := range batch {
		batch[i] = bytes.Clone(frame)
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, benchBatch)
	return func(n int) {
		for n > 0 {
			k := min(n, benchBatch)
			for _, f := range batch[:k] {
				r.ep.DeliverFrame(f)
			}
			got, err := ring.ReadBatch(bufs[:k], sizes[:k], nil, past)
			if err != nil || got != k || sizes[0] != want || sizes[k-1] != want {
				panic(fmt.Sprintf("ring batch read %d (sizes %d..%d), %v; want %d of %d bytes", got, sizes[0], sizes[k-1], err, k, want))
			}
			n -= k
		}
	}
}

// netstackSteps binds a gonet UDP socket on rtpPort (no filter): the frame
// in through the link, the payload out of the socket.
func (r *receiver) netstackSteps(tb testing.TB, frame []byte) steps {
	tb.Helper()
	addr := frames.StackV4
	if header.IPVersion(frame[header.EthernetMinimumSize:]) == 6 {
		addr = frames.StackV6
	}
	conn, err := r.st.ListenUDP(netip.AddrPortFrom(addr, rtpPort))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	buf := make([]byte, 2048)
	return func(n int) {
		for range n {
			r.ep.DeliverFrame(frame)
			if _, _, err := conn.ReadFrom(buf); err != nil {
				panic(err)
			}
		}
	}
}

// wrapSteps is the fast path in its compatible form: netstack's channel
// endpoint (with its Ethernet parser) wrapped by the filter, so each frame
// first becomes a PacketBuffer.
func wrapSteps(tb testing.TB, frame []byte) steps {
	tb.Helper()
	w := newWrapped(tb, true)
	ring := newRing(tb, fastfilter.RingOptions{})
	if _, err := w.f.RegisterRing(rtpPort, rtpPort+1, ring); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 2048)
	return func(n int) {
		for range n {
			pkt := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
			w.ch.InjectInbound(0, pkt)
			pkt.DecRef()
			if _, _, err := ring.Read(buf, past); err != nil {
				panic(err)
			}
		}
	}
}

// receivePaths are the ways from the link to the application that
// BenchmarkReceive compares on the same frames.
var receivePaths = []struct {
	name  string
	setup func(tb testing.TB, frame []byte) steps
}{
	// The headline: a packet at a time, against netstack's path.
	{"fast", func(tb testing.TB, frame []byte) steps { return newReceiver(tb).fastSteps(tb, frame, fastOptions{}) }},
	// A batch of frames from the link, one batch read by the application.
	{"fastbatch", func(tb testing.TB, frame []byte) steps { return newReceiver(tb).fastBatchSteps(tb, frame) }},
	// With RingOptions.Timestamps: what the receive time stamp costs.
	{"fasttimestamps", func(tb testing.TB, frame []byte) steps {
		return newReceiver(tb).fastSteps(tb, frame, fastOptions{ring: fastfilter.RingOptions{Timestamps: true}})
	}},
	// Register(ring.Receive): a ReceiveFunc of the application's own.
	{"fastfunc", func(tb testing.TB, frame []byte) steps {
		return newReceiver(tb).fastSteps(tb, frame, fastOptions{viaFunc: true})
	}},
	{"netstack", func(tb testing.TB, frame []byte) steps { return newReceiver(tb).netstackSteps(tb, frame) }},
	{"wrap", wrapSteps},
}

// BenchmarkReceive compares, on the same frames, a datagram's way from the
// link to the application: through the fast filter into a Ring (a packet at
// a time, in batches, with time stamps, through a ReceiveFunc), through
// netstack into a gonet UDP socket, and through the filter wrapped around
// netstack's own channel endpoint. ns/op is per packet.
func BenchmarkReceive(b *testing.B) {
	for _, path := range receivePaths {
		for _, variant := range benchVariants {
			b.Run(path.name+"/"+variant, func(b *testing.B) {
				run := path.setup(b, benchFrames[variant])
				run(benchBatch) // warm up: first-use allocations are not per packet
				b.ReportAllocs()
				b.ResetTimer()
				run(b.N)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
			})
		}
	}
}

// BenchmarkHook is the classifier alone, delivering to a function that does
// nothing: parse, checks (both checksums), lookup, counters.
func BenchmarkHook(b *testing.B) {
	for _, variant := range benchVariants {
		b.Run(variant, func(b *testing.B) {
			r := newReceiver(b)
			f, err := fastfilter.New(fastfilter.Options{Stack: r.st.Netstack(), NIC: r.st.NICID(0)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(f.Close)
			if _, err := f.Register(rtpPort, rtpPort, nop); err != nil {
				b.Fatal(err)
			}
			frame := benchFrames[variant]
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				f.Hook(frame)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// TestFastPathAllocatesNothing: classify, copy into the ring and read from
// the ring allocate nothing per packet, whatever the IP version and size,
// the registration, batching or time stamps.
func TestFastPathAllocatesNothing(t *testing.T) {
	for _, path := range receivePaths {
		if !strings.HasPrefix(path.name, "fast") {
			continue
		}
		for _, variant := range benchVariants {
			t.Run(path.name+"/"+variant, func(t *testing.T) {
				if raceEnabled && path.name == "fastfunc" {
					t.Skip("under -race sync.Pool drops a quarter of what it is given, on purpose")
				}
				run := path.setup(t, benchFrames[variant])
				run(benchBatch)
				if allocs := testing.AllocsPerRun(100, func() { run(benchBatch) }); allocs != 0 {
					t.Errorf("%v allocations per %d packets, want 0", allocs, benchBatch)
				}
			})
		}
	}
}
