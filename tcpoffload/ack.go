package tcpoffload

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcpSegment locates the TCP header in an Ethernet frame: IPv4 without
// fragmentation, or IPv6 with TCP as the first next header. It returns the
// source and destination addresses, the TCP header and segment, and false
// for anything else. It never reads outside frame.
func tcpSegment(frame []byte) (src, dst netip.Addr, tcp header.TCP, ok bool) {
	if len(frame) < header.EthernetMinimumSize {
		return
	}
	l3 := frame[header.EthernetMinimumSize:]
	var seg []byte
	switch header.Ethernet(frame).Type() {
	case header.IPv4ProtocolNumber:
		if len(l3) < header.IPv4MinimumSize || l3[0]>>4 != 4 {
			return
		}
		ip := header.IPv4(l3)
		hlen, total := int(ip.HeaderLength()), int(ip.TotalLength())
		if hlen < header.IPv4MinimumSize || total < hlen || total > len(l3) ||
			ip.TransportProtocol() != header.TCPProtocolNumber || ip.More() || ip.FragmentOffset() != 0 {
			return
		}
		src, dst = netip.AddrFrom4([4]byte(l3[12:16])), netip.AddrFrom4([4]byte(l3[16:20]))
		seg = l3[hlen:total]
	case header.IPv6ProtocolNumber:
		if len(l3) < header.IPv6MinimumSize || l3[0]>>4 != 6 {
			return
		}
		ip := header.IPv6(l3)
		end := header.IPv6MinimumSize + int(ip.PayloadLength())
		if ip.TransportProtocol() != header.TCPProtocolNumber || end > len(l3) {
			return
		}
		src, dst = netip.AddrFrom16([16]byte(l3[8:24])), netip.AddrFrom16([16]byte(l3[24:40]))
		seg = l3[header.IPv6MinimumSize:end]
	default:
		return
	}
	if len(seg) < header.TCPMinimumSize {
		return
	}
	tcp = header.TCP(seg)
	if off := int(tcp.DataOffset()); off < header.TCPMinimumSize || off > len(seg) {
		return
	}
	return src, dst, tcp, true
}

// outboundKey returns the session key of the headers of a packet the
// stack sends (Ethernet, IP, TCP; the payload need not follow).
func outboundKey(hdr []byte) (sessionKey, error) {
	if len(hdr) < header.EthernetMinimumSize {
		return sessionKey{}, errMalformed
	}
	l3 := hdr[header.EthernetMinimumSize:]
	var src, dst netip.Addr
	var l4 []byte
	switch header.Ethernet(hdr).Type() {
	case header.IPv4ProtocolNumber:
		if len(l3) < header.IPv4MinimumSize {
			return sessionKey{}, errMalformed
		}
		hlen := int(header.IPv4(l3).HeaderLength())
		if hlen < header.IPv4MinimumSize || hlen > len(l3) {
			return sessionKey{}, errMalformed
		}
		src, dst, l4 = netip.AddrFrom4([4]byte(l3[12:16])), netip.AddrFrom4([4]byte(l3[16:20])), l3[hlen:]
	case header.IPv6ProtocolNumber:
		if len(l3) < header.IPv6MinimumSize {
			return sessionKey{}, errMalformed
		}
		src, dst, l4 = netip.AddrFrom16([16]byte(l3[8:24])), netip.AddrFrom16([16]byte(l3[24:40])), l3[header.IPv6MinimumSize:]
	default:
		return sessionKey{}, errNotTCP
	}
	if len(l4) < 4 {
		return sessionKey{}, errMalformed
	}
	tcp := header.TCP(l4)
	return sessionKey{Local: netip.AddrPortFrom(src, tcp.SourcePort()), Remote: netip.AddrPortFrom(dst, tcp.DestinationPort())}, nil
}

// ObserveInbound implements link.TCPOffload; it is the ACK hook: the link calls it for every inbound frame
// before netstack (or fastfilter) sees it. For a TCP segment of an offloaded
// session it records the acknowledgement number, the window, the timestamp
// option and the time it arrived, and notes a RST or FIN; it never changes
// the frame, which goes on to netstack either way. frame is not retained.
func (e *Engine) ObserveInbound(frame []byte) {
	if e == nil {
		return
	}
	src, dst, tcp, ok := tcpSegment(frame)
	if !ok {
		return
	}
	k := sessionKey{Local: netip.AddrPortFrom(dst, tcp.DestinationPort()), Remote: netip.AddrPortFrom(src, tcp.SourcePort())}
	// Most ACKs belong to the session the last one did: skip the map.
	s := e.lastACKed.Load()
	if s == nil || s.key != k || s.removed.Load() {
		e.mu.RLock()
		s = e.sessions[k]
		e.mu.RUnlock()
		if s == nil {
			return
		}
		e.lastACKed.Store(s)
	}
	now := e.clock.NowMonotonic().Sub(tcpip.MonotonicTime{}).Nanoseconds()
	s.lastActive.Store(now)
	flags := tcp.Flags()
	if flags&header.TCPFlagRst != 0 {
		s.closed.Store(true)
	}
	if flags&header.TCPFlagFin != 0 {
		s.finIn.Store(true)
		if s.finOut.Load() {
			s.closed.Store(true)
		}
	}
	if flags&header.TCPFlagAck == 0 {
		return
	}
	s.ackNum.Store(tcp.AckNumber())
	s.window.Store(uint32(tcp.WindowSize()))
	if val, ecr, ok := timestampOption(tcp[header.TCPMinimumSize:tcp.DataOffset()]); ok {
		s.tsVal.Store(val)
		s.tsEcr.Store(ecr)
	}
	s.ackedAt.Store(now)
	s.acks.Add(1)
	e.acksSeen.Add(1)
}

// timestampOption finds the TCP timestamp option (kind 8) in opts without
// allocating; malformed options end the search.
func timestampOption(opts []byte) (val, ecr uint32, ok bool) {
	for len(opts) > 0 {
		switch opts[0] {
		case header.TCPOptionEOL:
			return 0, 0, false
		case header.TCPOptionNOP:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return 0, 0, false
		}
		if opts[0] == header.TCPOptionTS && opts[1] == header.TCPOptionTSLength {
			return binary.BigEndian.Uint32(opts[2:]), binary.BigEndian.Uint32(opts[6:]), true
		}
		opts = opts[opts[1]:]
	}
	return 0, 0, false
}
