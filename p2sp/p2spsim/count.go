package p2spsim

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/link"
)

// CountTCP counts, from now on, the TCP segments the node receives from or
// to port (a frame hook on its link, so one counter per node). The HTTP-only
// test uses it to show that no BitTorrent traffic flowed.
func (n *Node) CountTCP(port uint16) *atomic.Int64 {
	var count atomic.Int64
	n.Link.SetFrameHook(func(frame []byte) link.Verdict {
		if tcpPorts(frame, port) {
			count.Add(1)
		}
		return link.Pass
	})
	return &count
}

// tcpPorts reports whether frame is a TCP segment from or to port.
func tcpPorts(frame []byte, port uint16) bool {
	if len(frame) < header.EthernetMinimumSize {
		return false
	}
	eth := header.Ethernet(frame)
	payload := frame[header.EthernetMinimumSize:]
	var transport []byte
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(payload)
		if !ip.IsValid(len(payload)) || ip.TransportProtocol() != header.TCPProtocolNumber {
			return false
		}
		transport = ip.Payload()
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(payload)
		if !ip.IsValid(len(payload)) || ip.TransportProtocol() != header.TCPProtocolNumber {
			return false
		}
		transport = ip.Payload()
	default:
		return false
	}
	if len(transport) < header.TCPMinimumSize {
		return false
	}
	tcp := header.TCP(transport)
	return tcp.SourcePort() == port || tcp.DestinationPort() == port
}
