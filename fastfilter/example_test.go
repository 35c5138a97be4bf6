package fastfilter_test

import (
	"bytes"
	"fmt"
	"log"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

// Two stacks on a simulated wire: the receiver registers an RTP/RTCP pair
// with a Ring; the sender uses a plain netstack UDP socket.
func Example() {
	clock := sim.NewClock()
	network, _ := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: 1})
	newStack := func(mac tcpip.LinkAddress, addr string) (*stack.Stack, *sim.Endpoint) {
		ep, _ := network.NewEndpoint(sim.EndpointOptions{MAC: mac})
		st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Link: ep, Addrs: []string{addr}}}, Clock: clock, Seed: 1})
		if err != nil {
			log.Fatal(err)
		}
		return st, ep
	}
	sender, _ := newStack("\x02\x00\x00\x00\x00\x01", "198.51.100.1/24")
	defer sender.Close()
	receiver, link := newStack("\x02\x00\x00\x00\x00\x02", "198.51.100.2/24")
	defer receiver.Close()

	// The receiver's fast path: filter, hook, ring, registration.
	f, err := fastfilter.New(fastfilter.Options{Stack: receiver.Netstack(), NIC: receiver.NICID(0)})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	link.SetFrameHook(f.Hook)
	ring, _ := fastfilter.NewRing(fastfilter.RingOptions{})
	reg, err := f.RegisterRing(20000, 20001, ring)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	// The sender: an ordinary netstack socket, one small datagram and one
	// the link must fragment.
	var wq waiter.Queue
	sock, _ := sender.Netstack().NewEndpoint(header.UDPProtocolNumber, header.IPv4ProtocolNumber, &wq)
	defer sock.Close()
	to := stack.FullAddress(netip.MustParseAddrPort("198.51.100.2:20000"))
	for _, size := range []int{172, 3000} {
		sock.Write(bytes.NewReader(make([]byte, size)), tcpip.WriteOptions{To: &to})
		network.Run(10 * time.Millisecond)
	}

	buf := make([]byte, 4096)
	for ring.Len() > 0 {
		n, info, _ := ring.ReadPacket(buf, time.Time{})
		fmt.Printf("%d bytes from %v, via netstack: %v\n", n, info.Src.Addr(), info.ViaNetstack)
	}
	c := reg.Counters()
	fmt.Printf("fast %d, via netstack %d\n", c.FastDelivered, c.NetstackDelivered)
	// Output:
	// 172 bytes from 198.51.100.1, via netstack: false
	// 3000 bytes from 198.51.100.1, via netstack: true
	// fast 1, via netstack 1
}
