package mediaport_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
)

// Two stacks on a simulated wire, each with a Manager; a caller sends five
// RTP-sized datagrams from an RTP/RTCP pair to the callee's pair.
func Example() {
	clock := sim.NewClock()
	network, _ := sim.NewNetwork(sim.NetworkOptions{Clock: clock, Seed: 1})
	newManager := func(mac tcpip.LinkAddress, addr string) *mediaport.Manager {
		ep, _ := network.NewEndpoint(sim.EndpointOptions{MAC: mac, Impairments: sim.Impairments{Delay: time.Millisecond}})
		st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Link: ep, Addrs: []string{addr}}}, Clock: clock, Seed: 1})
		if err != nil {
			log.Fatal(err)
		}
		m, err := mediaport.NewManager(st, mediaport.Options{PortMin: 20000, PortMax: 20999})
		if err != nil {
			log.Fatal(err)
		}
		return m
	}
	caller := newManager("\x02\x00\x00\x00\x00\x01", "198.51.100.1/24")
	defer caller.Stack().Close()
	defer caller.Close()
	callee := newManager("\x02\x00\x00\x00\x00\x02", "198.51.100.2/24")
	defer callee.Stack().Close()
	defer callee.Close()

	out, err := caller.OpenPair(0) // 20000 and 20001
	if err != nil {
		log.Fatal(err)
	}
	in, err := callee.OpenPair(0)
	if err != nil {
		log.Fatal(err)
	}
	for range 5 {
		if _, err := out.RTP.WriteTo(make([]byte, 12+160), in.RTP.LocalAddr()); err != nil {
			log.Fatal(err)
		}
		network.Run(20 * time.Millisecond) // one packet time
	}

	// The simulation has delivered everything: read without blocking.
	in.RTP.SetReadDeadline(time.Unix(1, 0))
	buf := make([]byte, 1500)
	for {
		n, from, err := in.RTP.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		fmt.Printf("%d bytes from %v\n", n, from)
	}
	st := out.RTP.Stats().Send
	fmt.Printf("caller sent %d fast, %d through netstack (the first: no ARP entry yet)\n", st.Fast, st.FallbackTotal())
	fmt.Printf("callee received %d fast\n", in.RTP.Stats().Receive.FastDelivered)
	// Output:
	// 172 bytes from 198.51.100.1:20000
	// 172 bytes from 198.51.100.1:20000
	// 172 bytes from 198.51.100.1:20000
	// 172 bytes from 198.51.100.1:20000
	// 172 bytes from 198.51.100.1:20000
	// caller sent 4 fast, 1 through netstack (the first: no ARP entry yet)
	// callee received 5 fast
}
