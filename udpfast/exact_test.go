package udpfast_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/udpfast"
)

// frameFields is every field of an Ethernet + IP + UDP frame, for diffs
// that name the field that differs.
type frameFields struct {
	EthDst, EthSrc      tcpip.LinkAddress
	EthType             tcpip.NetworkProtocolNumber
	Version             int
	TOS                 uint8 // IPv4 TOS / IPv6 traffic class
	FlowLabel           uint32
	Length              uint16 // IPv4 total length / IPv6 payload length
	ID                  uint16
	Flags               uint8
	FragmentOffset      uint16
	TTL                 uint8 // TTL / hop limit
	Protocol            uint8
	IPChecksum          uint16
	IPChecksumValid     bool
	Src, Dst            tcpip.Address
	SrcPort, DstPort    uint16
	UDPLength           uint16
	UDPChecksum         uint16
	UDPChecksumValid    bool
	Payload             []byte
	TrailingFrameLength int
}

func decodeFrame(t *testing.T, frame []byte) frameFields {
	t.Helper()
	eth := header.Ethernet(frame)
	f := frameFields{EthDst: eth.DestinationAddress(), EthSrc: eth.SourceAddress(), EthType: eth.Type()}
	rest := frame[header.EthernetMinimumSize:]
	var l4 []byte
	switch f.EthType {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(rest)
		if !ip.IsValid(len(rest)) {
			t.Fatalf("invalid IPv4 header in % x", frame)
		}
		f.Version, f.TOS, f.Length, f.ID = 4, func() uint8 { tos, _ := ip.TOS(); return tos }(), ip.TotalLength(), ip.ID()
		f.Flags, f.FragmentOffset, f.TTL, f.Protocol = ip.Flags(), ip.FragmentOffset(), ip.TTL(), ip.Protocol()
		f.IPChecksum, f.IPChecksumValid = ip.Checksum(), ip.IsChecksumValid()
		f.Src, f.Dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		f.TrailingFrameLength = len(rest) - int(ip.TotalLength())
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(rest)
		if !ip.IsValid(len(rest)) {
			t.Fatalf("invalid IPv6 header in % x", frame)
		}
		f.Version, f.Length, f.TTL, f.Protocol = 6, ip.PayloadLength(), ip.HopLimit(), ip.NextHeader()
		f.TOS, f.FlowLabel = ip.TOS()
		f.Src, f.Dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		f.TrailingFrameLength = len(rest) - header.IPv6MinimumSize - int(ip.PayloadLength())
	default:
		t.Fatalf("not IP: % x", frame)
	}
	u := header.UDP(l4)
	f.SrcPort, f.DstPort, f.UDPLength, f.UDPChecksum = u.SourcePort(), u.DestinationPort(), u.Length(), u.Checksum()
	f.Payload = u.Payload()
	f.UDPChecksumValid = u.IsChecksumValid(f.Src, f.Dst, checksum.Checksum(f.Payload, 0))
	return f
}

// zeroSumPayload returns a 2-byte payload whose UDP checksum computes to
// zero, which must be sent as 0xffff (RFC 768).
func zeroSumPayload(src, dst netip.AddrPort) []byte {
	hdr := header.UDP(make([]byte, header.UDPMinimumSize))
	hdr.Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: header.UDPMinimumSize + 2})
	sum := hdr.CalculateChecksum(header.PseudoHeaderChecksum(udp.ProtocolNumber, stack.AddrFrom(src.Addr()), stack.AddrFrom(dst.Addr()), header.UDPMinimumSize+2))
	return binary.BigEndian.AppendUint16(nil, ^sum)
}

// A frame from udpfast equals, field for field and byte for byte, the frame
// netstack's own UDP endpoint sends for the same datagram: default options,
// and TTL/TOS set alike on both.
func TestFramesEqualNetstacks(t *testing.T) {
	s := newSinkStack(t, nil)
	for _, fam := range families {
		for _, cfg := range []struct {
			name     string
			ttl, tos uint8
		}{{"defaults", 0, 0}, {"ttl32-ef", 32, 46 << 2}} {
			local := netip.AddrPortFrom(fam.a, rtp)
			dst := netip.AddrPortFrom(fam.b, sink)
			ep := bindUDP(t, s.st, local)
			if cfg.tos != 0 {
				opt := tcpip.IPv4TOSOption
				if fam.name == "v6" {
					opt = tcpip.IPv6TrafficClassOption
				}
				if err := ep.SetSockOptInt(opt, int(cfg.tos)); err != nil {
					t.Fatal(err)
				}
			}
			snd := s.sender(t, local, udpfast.EndpointFallback{Endpoint: ep, TTL: cfg.ttl}, udpfast.Options{TTL: cfg.ttl, TOS: cfg.tos})
			if err := snd.Send([]byte("make the entry"), dst); err != nil {
				t.Fatal(err)
			}
			s.sink.Record(true)
			s.sink.Frames()
			payloads := map[string][]byte{"zero-checksum": zeroSumPayload(local, dst)}
			for _, n := range []int{0, 1, 171, 172, 1200, fam.maxFastPayload} {
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(i*7 + n)
				}
				payloads[fmt.Sprint(n)] = p
			}
			for name, p := range payloads {
				t.Run(fmt.Sprintf("%s/%s/%s", fam.name, cfg.name, name), func(t *testing.T) {
					netstackLane := udpfast.EndpointFallback{Endpoint: ep, TTL: cfg.ttl}
					if err := netstackLane.SendViaNetstack(p, dst); err != nil {
						t.Fatal(err)
					}
					fastBefore := snd.Stats().Fast
					if err := snd.Send(p, dst); err != nil {
						t.Fatal(err)
					}
					if snd.Stats().Fast != fastBefore+1 {
						t.Fatalf("datagram did not take the fast path: %+v", snd.Stats())
					}
					frames := s.sink.Frames()
					if len(frames) != 2 {
						t.Fatalf("captured %d frames, want 2", len(frames))
					}
					want, got := decodeFrame(t, frames[0]), decodeFrame(t, frames[1])
					if d := cmp.Diff(want, got); d != "" {
						t.Fatalf("fast frame differs from netstack's (-want +got):\n%s", d)
					}
					if !want.IPChecksumValid && fam.name == "v4" || !want.UDPChecksumValid {
						t.Fatalf("netstack's frame has bad checksums: %+v", want)
					}
					if name == "zero-checksum" && got.UDPChecksum != 0xffff {
						t.Fatalf("computed-zero UDP checksum sent as %#04x", got.UDPChecksum)
					}
					if !bytes.Equal(frames[0], frames[1]) {
						t.Fatalf("frames differ byte for byte:\nnetstack % x\nudpfast  % x", frames[0], frames[1])
					}
				})
			}
			s.sink.Record(false)
			ep.Close()
		}
	}
}

func bindUDP(tb testing.TB, st *stack.Stack, local netip.AddrPort) tcpip.Endpoint {
	tb.Helper()
	proto := header.IPv4ProtocolNumber
	if local.Addr().Is6() {
		proto = header.IPv6ProtocolNumber
	}
	var wq waiter.Queue
	ep, err := st.Netstack().NewEndpoint(udp.ProtocolNumber, proto, &wq)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ep.Bind(stack.FullAddress(local)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ep.Close)
	return ep
}

// With fragmentation allowed, netstack clears DF and gives each datagram a
// random non-zero ID; the fast path clears DF and counts IDs. Everything
// but the ID (and so the header checksum) is equal.
func TestFramesEqualNetstacksFragmentable(t *testing.T) {
	s := newSinkStack(t, nil)
	local, dst := netip.AddrPortFrom(v4.a, rtp), netip.AddrPortFrom(v4.b, sink)
	ep := bindUDP(t, s.st, local)
	if err := ep.SetSockOptInt(tcpip.MTUDiscoverOption, int(tcpip.PMTUDiscoveryDont)); err != nil {
		t.Fatal(err)
	}
	netstackLane := udpfast.EndpointFallback{Endpoint: ep}
	snd := s.sender(t, local, netstackLane, udpfast.Options{AllowFragmentation: true})
	if err := snd.Send([]byte("make the entry"), dst); err != nil {
		t.Fatal(err)
	}
	s.sink.Record(true)
	s.sink.Frames()
	var ids []uint16
	for i := 0; i < 3; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 172)
		if err := netstackLane.SendViaNetstack(p, dst); err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(p, dst); err != nil {
			t.Fatal(err)
		}
		frames := s.sink.Frames()
		want, got := decodeFrame(t, frames[0]), decodeFrame(t, frames[1])
		if d := cmp.Diff(want, got, cmpopts.IgnoreFields(frameFields{}, "ID", "IPChecksum")); d != "" {
			t.Fatalf("fast frame differs from netstack's (-want +got):\n%s", d)
		}
		if got.Flags != 0 || got.ID == 0 || !got.IPChecksumValid || !got.UDPChecksumValid {
			t.Fatalf("fragmentable fast frame: %+v", got)
		}
		ids = append(ids, got.ID)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("IPv4 IDs repeat: %v", ids)
	}
}
