package udpfast

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
)

// FuzzTemplate builds frames from arbitrary addresses, ports, TTL/TOS,
// IDs and payloads, and checks them with netstack's own header parsers:
// every length and both checksums must be right, the payload intact, the
// frame exactly as long as its headers say, and a template reused for
// successive payloads of different sizes must not carry anything over.
func FuzzTemplate(f *testing.F) {
	f.Add(false, []byte{198, 51, 100, 1}, []byte{198, 51, 100, 2}, uint16(20004), uint16(6000), uint8(64), uint8(0), true, uint16(0), []byte("hello"), 3)
	f.Add(true, bytes.Repeat([]byte{0x20, 0x01, 0x0d, 0xb8}, 4), bytes.Repeat([]byte{0x20, 0x01}, 8), uint16(1), uint16(65535), uint8(1), uint8(0xb8), false, uint16(0xffff), make([]byte, 1452), 0)
	f.Add(false, []byte{255, 255, 255, 255}, []byte{0, 0, 0, 0}, uint16(0), uint16(0), uint8(255), uint8(255), false, uint16(1), []byte{}, 1)
	f.Fuzz(func(t *testing.T, v6 bool, src, dst []byte, sport, dport uint16, ttl, tos uint8, df bool, id uint16, payload []byte, cut int) {
		size := header.IPv4AddressSize
		if v6 {
			size = header.IPv6AddressSize
		}
		if len(src) < size || len(dst) < size || len(payload) > 9000 {
			t.Skip()
		}
		fields := templateFields{
			srcMAC: frames.MAC(1), dstMAC: frames.MAC(2),
			src: tcpip.AddrFromSlice(src[:size]), dst: tcpip.AddrFromSlice(dst[:size]),
			srcPort: sport, dstPort: dport, ttl: ttl, tos: tos, df: df,
		}
		if df || v6 {
			id = 0
		}
		var tmpl template
		tmpl.build(&fields)
		buf := make([]byte, maxHeaderLen+9000)
		// A longer datagram first, so stale bytes would show.
		tmpl.fill(buf, bytes.Repeat([]byte{0xa5}, len(payload)+min(max(cut, 0), 64)), id+1)
		frame := tmpl.fill(buf, payload, id)
		check(t, frame, &fields, payload, id)
	})
}

func check(t *testing.T, frame []byte, f *templateFields, payload []byte, id uint16) {
	t.Helper()
	eth := header.Ethernet(frame)
	if eth.SourceAddress() != f.srcMAC || eth.DestinationAddress() != f.dstMAC {
		t.Fatalf("MACs %s → %s", eth.SourceAddress(), eth.DestinationAddress())
	}
	rest := frame[header.EthernetMinimumSize:]
	var l4 []byte
	var src, dst tcpip.Address
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(rest)
		if !ip.IsValid(len(rest)) || int(ip.TotalLength()) != len(rest) || !ip.IsChecksumValid() {
			t.Fatalf("bad IPv4 header: % x", rest[:header.IPv4MinimumSize])
		}
		tos, _ := ip.TOS()
		wantFlags := uint8(0)
		if f.df {
			wantFlags = header.IPv4FlagDontFragment
		}
		if ip.TTL() != f.ttl || tos != f.tos || ip.Flags() != wantFlags || ip.ID() != id || ip.TransportProtocol() != header.UDPProtocolNumber {
			t.Fatalf("IPv4 fields: ttl %d tos %d flags %d id %d", ip.TTL(), tos, ip.Flags(), ip.ID())
		}
		src, dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(rest)
		if !ip.IsValid(len(rest)) || header.IPv6MinimumSize+int(ip.PayloadLength()) != len(rest) {
			t.Fatalf("bad IPv6 header: % x", rest[:header.IPv6MinimumSize])
		}
		if tc, flow := ip.TOS(); ip.HopLimit() != f.ttl || tc != f.tos || flow != 0 || ip.TransportProtocol() != header.UDPProtocolNumber {
			t.Fatalf("IPv6 fields: hop limit %d tc %d flow %d", ip.HopLimit(), tc, flow)
		}
		src, dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
	default:
		t.Fatalf("ethertype %#x", eth.Type())
	}
	if src != f.src || dst != f.dst {
		t.Fatalf("addresses %s → %s", src, dst)
	}
	u := header.UDP(l4)
	if int(u.Length()) != len(l4) || u.SourcePort() != f.srcPort || u.DestinationPort() != f.dstPort {
		t.Fatalf("UDP header % x for %d bytes", l4[:header.UDPMinimumSize], len(l4))
	}
	if u.Checksum() == 0 || !u.IsChecksumValid(src, dst, checksum.Checksum(u.Payload(), 0)) {
		t.Fatalf("UDP checksum %#04x invalid", u.Checksum())
	}
	if !bytes.Equal(u.Payload(), payload) {
		t.Fatal("payload changed")
	}
}
