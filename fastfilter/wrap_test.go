package fastfilter_test

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/stack"
)

// wrapped is a stack on netstack's channel endpoint, wrapped by the filter;
// nothing is registered yet.
type wrapped struct {
	ch *channel.Endpoint
	st *stack.Stack
	f  *fastfilter.Filter
}

func newWrapped(t testing.TB, withEthernet bool) *wrapped {
	t.Helper()
	w := &wrapped{ch: channel.New(16, 1500, frames.StackMAC)}
	var child tcpipstack.LinkEndpoint = w.ch
	if withEthernet {
		child = ethernet.New(w.ch)
	}
	ep := fastfilter.Wrap(child, nil) // the filter needs the NIC, which needs ep
	var err error
	w.st, err = stack.New(stack.Options{
		NICs: []stack.NICOptions{{Name: "ch0", Link: ep, Addrs: frames.Addrs(frames.Stack)}},
		Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.st.Close)
	w.f, err = fastfilter.New(fastfilter.Options{Stack: w.st.Netstack(), NIC: w.st.NICID(0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.f.Close)
	ep.SetFilter(w.f)
	return w
}

// inject hands frame to the channel endpoint as a NIC driver would: the
// whole frame with an Ethernet child, the IP packet without. split cuts the
// packet into two views to exercise the copy of non-contiguous packets.
func (w *wrapped) inject(frame []byte, withEthernet, split bool) {
	proto := tcpip.NetworkProtocolNumber(0)
	if !withEthernet {
		proto = header.Ethernet(frame).Type()
		frame = frame[header.EthernetMinimumSize:]
	}
	var buf buffer.Buffer
	if split {
		buf = buffer.MakeWithData(append([]byte(nil), frame[:30]...))
		buf.Append(buffer.NewViewWithData(append([]byte(nil), frame[30:]...)))
	} else {
		buf = buffer.MakeWithData(append([]byte(nil), frame...))
	}
	pkt := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{Payload: buf})
	w.ch.InjectInbound(proto, pkt)
	pkt.DecRef()
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		name                string
		withEthernet, split bool
	}{
		{"ip", false, false},
		{"ip/split", false, true},
		{"ethernet", true, false},
		{"ethernet/split", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWrapped(t, tc.withEthernet)
			rec := &recorder{}
			if _, err := w.f.Register(rtpPort, rtpPort+1, rec.receive); err != nil {
				t.Fatal(err)
			}
			sock := bindNetstackOn(t, w.st, rtpPort+5)
			for _, u := range []frames.UDP{v4Frame(testPayload), v6Frame(testPayload)} {
				w.inject(u.Build(), tc.withEthernet, tc.split)
				other := u
				other.Dst = netip.AddrPortFrom(u.Dst.Addr(), rtpPort+5)
				w.inject(other.Build(), tc.withEthernet, tc.split)
			}
			if got := rec.take(); len(got) != 2 || got[0].Payload != string(testPayload) || got[1].Version != 6 {
				t.Errorf("fast lane delivered %+v, want the v4 and the v6 datagram", got)
			}
			c := w.f.Counters()
			if c.FastDelivered != 2 || c.Passed.NotRegistered != 2 {
				t.Errorf("counters %+v: want 2 fast, 2 passed as not registered", c)
			}
			// What the filter passed on reached netstack's socket.
			var n int
			for {
				wr := tcpip.SliceWriter(make([]byte, 100))
				if _, err := sock.Read(&wr, tcpip.ReadOptions{}); err != nil {
					break
				}
				n++
			}
			if n != 2 {
				t.Errorf("netstack socket on an unregistered port got %d datagrams, want 2", n)
			}
		})
	}
}

func bindNetstackOn(t *testing.T, st *stack.Stack, port uint16) tcpip.Endpoint {
	t.Helper()
	fx := &fixture{st: st}
	ep, err := fx.bindNetstack(t, header.IPv6ProtocolNumber, port)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}
