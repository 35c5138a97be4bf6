// Package policyarptest builds small simulated LANs (link/sim, a sim.Clock,
// one netstack per host) for testing the policy ARP table and the fast send
// path deterministically, and the neighbour announcements that move a
// peer's MAC: gratuitous ARP and unsolicited Neighbor Advertisement frames.
//
// Every host records the frames it receives, so a test can check which MAC
// a frame was sent to without touching the code under test.
package policyarptest

import (
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

// HostConfig describes one host of a LAN.
type HostConfig struct {
	MAC      tcpip.LinkAddress
	Addrs    []string // CIDR, e.g. "198.51.100.1/24", "2001:db8::1/64"
	Gateways []string
}

// LAN is a set of hosts on one simulated switch.
type LAN struct {
	Clock   *sim.Clock
	Network *sim.Network
	Hosts   []*Host
}

// Host is one stack on the LAN.
type Host struct {
	Stack *stack.Stack
	Link  *sim.Endpoint

	mu     sync.Mutex
	frames [][]byte
	hook   link.FrameHook
}

// Options configure a LAN.
type Options struct {
	// Seed seeds the network and the stacks (host i gets Seed+i).
	Seed uint64
	// Delay is the one-way delay of every host's link.
	Delay time.Duration
	// Trace, when set, receives a pcap of every frame sent on the LAN, with
	// simulated timestamps: the same seed and inputs give the same bytes.
	Trace io.Writer
}

// NewLAN builds the hosts on one simulated switch. The stacks are closed
// when the test ends.
func NewLAN(t testing.TB, opts Options, hosts ...HostConfig) *LAN {
	t.Helper()
	clock := sim.NewClock()
	netOpts := sim.NetworkOptions{Clock: clock, Seed: opts.Seed}
	if opts.Trace != nil {
		w, err := pcap.NewWriter(opts.Trace, clock, 0)
		if err != nil {
			t.Fatal(err)
		}
		netOpts.Capture = w
	}
	network, err := sim.NewNetwork(netOpts)
	if err != nil {
		t.Fatal(err)
	}
	lan := &LAN{Clock: clock, Network: network}
	for i, hc := range hosts {
		ep, err := network.NewEndpoint(sim.EndpointOptions{MAC: hc.MAC, Impairments: sim.Impairments{Delay: opts.Delay}})
		if err != nil {
			t.Fatal(err)
		}
		st, err := stack.New(stack.Options{
			NICs:     []stack.NICOptions{{Name: "sim0", Link: ep, Addrs: hc.Addrs}},
			Gateways: hc.Gateways,
			Clock:    clock,
			Seed:     int64(opts.Seed) + int64(i),
		})
		if err != nil {
			t.Fatal(err)
		}
		clock.AddSettler(st.Settle)
		t.Cleanup(st.Close)
		h := &Host{Stack: st, Link: ep}
		ep.SetFrameHook(h.receive)
		lan.Hosts = append(lan.Hosts, h)
	}
	return lan
}

// Run advances simulated time by d.
func (l *LAN) Run(d time.Duration) { l.Clock.Advance(d) }

func (h *Host) receive(frame []byte) link.Verdict {
	h.mu.Lock()
	h.frames = append(h.frames, append([]byte(nil), frame...))
	hook := h.hook
	h.mu.Unlock()
	if hook != nil {
		return hook(frame)
	}
	return link.Pass
}

// SetHook installs a FrameHook run after the recorder (a fast filter).
func (h *Host) SetHook(hook link.FrameHook) {
	h.mu.Lock()
	h.hook = hook
	h.mu.Unlock()
}

// Frames returns the frames received since the last call.
func (h *Host) Frames() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.frames
	h.frames = nil
	return f
}

// MAC returns the host's current Ethernet address.
func (h *Host) MAC() tcpip.LinkAddress { return h.Link.LinkAddress() }

// GratuitousARP returns the broadcast ARP request in which ip announces
// that it is at mac (what `arping -U` sends).
func GratuitousARP(ip tcpip.Address, mac tcpip.LinkAddress) []byte {
	frame := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(frame).Encode(&header.EthernetFields{
		SrcAddr: mac, DstAddr: header.EthernetBroadcastAddress, Type: header.ARPProtocolNumber,
	})
	arp := header.ARP(frame[header.EthernetMinimumSize:])
	arp.SetIPv4OverEthernet()
	arp.SetOp(header.ARPRequest)
	ip4 := ip.As4()
	copy(arp.HardwareAddressSender(), mac)
	copy(arp.ProtocolAddressSender(), ip4[:])
	copy(arp.ProtocolAddressTarget(), ip4[:])
	return frame
}

// UnsolicitedNA returns the Neighbor Advertisement (override set, to
// all-nodes) in which ip announces that it is at mac.
func UnsolicitedNA(ip tcpip.Address, mac tcpip.LinkAddress) []byte {
	const naLen = header.ICMPv6NeighborAdvertMinimumSize + 8 // + target link-layer address option
	frame := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+naLen)
	allNodes := header.IPv6AllNodesMulticastAddress
	header.Ethernet(frame).Encode(&header.EthernetFields{
		SrcAddr: mac, DstAddr: header.EthernetAddressFromMulticastIPv6Address(allNodes), Type: header.IPv6ProtocolNumber,
	})
	ip6 := header.IPv6(frame[header.EthernetMinimumSize:])
	ip6.Encode(&header.IPv6Fields{
		PayloadLength: naLen, TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: header.NDPHopLimit, SrcAddr: ip, DstAddr: allNodes,
	})
	icmp := header.ICMPv6(ip6[header.IPv6MinimumSize:])
	icmp.SetType(header.ICMPv6NeighborAdvert)
	na := header.NDPNeighborAdvert(icmp.MessageBody())
	na.SetOverrideFlag(true)
	na.SetTargetAddress(ip)
	na.Options().Serialize(header.NDPOptionsSerializer{header.NDPTargetLinkLayerAddressOption(mac)})
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
		Header: icmp, Src: ip, Dst: allNodes,
	}))
	return frame
}

// UDPFrame summarises an Ethernet frame carrying a UDP datagram.
type UDPFrame struct {
	DstMAC  tcpip.LinkAddress
	Src     tcpip.Address
	Dst     tcpip.Address
	SrcPort uint16
	DstPort uint16
	Payload []byte
}

// ParseUDP returns the UDP datagram in frame (IPv4 without options, or IPv6
// without extension headers), and false for anything else.
func ParseUDP(frame []byte) (UDPFrame, bool) {
	if len(frame) < header.EthernetMinimumSize {
		return UDPFrame{}, false
	}
	eth := header.Ethernet(frame)
	f := UDPFrame{DstMAC: eth.DestinationAddress()}
	rest := frame[header.EthernetMinimumSize:]
	var l4 []byte
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(rest)
		if !ip.IsValid(len(rest)) || ip.HeaderLength() != header.IPv4MinimumSize || ip.TransportProtocol() != header.UDPProtocolNumber || ip.More() || ip.FragmentOffset() != 0 {
			return UDPFrame{}, false
		}
		f.Src, f.Dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(rest)
		if !ip.IsValid(len(rest)) || ip.TransportProtocol() != header.UDPProtocolNumber {
			return UDPFrame{}, false
		}
		f.Src, f.Dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
	default:
		return UDPFrame{}, false
	}
	if len(l4) < header.UDPMinimumSize {
		return UDPFrame{}, false
	}
	u := header.UDP(l4)
	f.SrcPort, f.DstPort, f.Payload = u.SourcePort(), u.DestinationPort(), u.Payload()
	return f, true
}

// IsARPRequest reports whether frame is an ARP request for target.
func IsARPRequest(frame []byte, target tcpip.Address) bool {
	if len(frame) < header.EthernetMinimumSize+header.ARPSize || header.Ethernet(frame).Type() != header.ARPProtocolNumber {
		return false
	}
	arp := header.ARP(frame[header.EthernetMinimumSize:])
	t4 := target.As4()
	return arp.IsValid() && arp.Op() == header.ARPRequest && string(arp.ProtocolAddressTarget()) == string(t4[:])
}

// Seq puts a sequence number in the first 8 bytes of a payload.
func Seq(payload []byte, n uint64) []byte {
	binary.BigEndian.PutUint64(payload, n)
	return payload
}

// SeqOf reads the sequence number Seq wrote.
func SeqOf(payload []byte) uint64 { return binary.BigEndian.Uint64(payload) }
