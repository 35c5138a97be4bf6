package ethlink

import (
	"encoding/binary"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// An Endpoint with Options.VLAN set is the link of one 802.1Q VLAN, as a
// Linux VLAN sub-interface (ip link add link X name X.100 type vlan id 100)
// is: inbound frames of that VLAN lose their tag before the FrameHook and
// netstack see them, and every outbound frame, netstack's and the fast
// path's (WriteFrames) alike, gains the tag on its way to the device. The
// hook and the fast senders thus see and build plain Ethernet frames, and
// capture shows the frames as they are on the wire.
//
// Tagging copies a frame once into a reused buffer (the 4 bytes go
// between the MACs and the EtherType): for a media frame of 200 bytes that
// costs less than the write system call it precedes by two orders of
// magnitude, and it keeps the fast send templates (udpfast) link-agnostic.
// The priority bits (PCP) follow the IP packet's DSCP class selector
// (DSCP >> 3: EF, 46, is 5, voice), as Linux's default egress map does for
// the skb priority a DSCP sets.
//
// Without a VLAN the endpoint takes priority-tagged frames (VID 0) as
// untagged, as Linux does, and drops frames of other VLANs.

const (
	etherTypeVLAN = 0x8100 // IEEE 802.1Q tag protocol identifier
	vlanTagSize   = 4
	vlanIDMask    = 0x0fff
	macsSize      = 2 * header.EthernetAddressSize

	// MaxVLANID is the largest VLAN ID (4095 is reserved).
	MaxVLANID = 4094
)

// vlanState is the transmit side of a VLAN: scratch frames for tagging.
type vlanState struct {
	mu      sync.Mutex
	frames  [][]byte
	scratch [][]byte
}

// untag checks an inbound frame's 802.1Q tag against the endpoint's VLAN
// and returns the frame as netstack must see it: without the tag, moved
// in place (the MACs shift by 4 bytes). ok is false when the frame is not
// this link's (counted).
func (e *Endpoint) untag(frame []byte) (_ []byte, ok bool) {
	vid := uint16(0)
	tagged := len(frame) >= header.EthernetMinimumSize+vlanTagSize &&
		binary.BigEndian.Uint16(frame[macsSize:]) == etherTypeVLAN
	if tagged {
		vid = binary.BigEndian.Uint16(frame[macsSize+2:]) & vlanIDMask
	}
	switch {
	case vid != e.opts.VLAN && vid != 0:
		e.Stats.RxDropOtherVLAN.Add(1)
		return nil, false
	case vid == 0 && e.opts.VLAN != 0:
		e.Stats.RxDropUntagged.Add(1)
		return nil, false
	case !tagged:
		return frame, true
	}
	copy(frame[vlanTagSize:vlanTagSize+macsSize], frame[:macsSize])
	return frame[vlanTagSize:], true
}

// tagFrames returns frames with the endpoint's 802.1Q tag inserted, copied
// into scratch buffers that stay valid until the caller unlocks v.mu.
func (e *Endpoint) tagFrames(frames [][]byte) [][]byte {
	v := &e.vlan
	out := v.frames[:0]
	for i, f := range frames {
		if i == len(v.scratch) {
			v.scratch = append(v.scratch, nil)
		}
		v.scratch[i] = e.appendTagged(v.scratch[i][:0], f)
		out = append(out, v.scratch[i])
	}
	v.frames = out[:0]
	return out
}

// appendTagged appends frame to b with the endpoint's tag after the MACs.
// A frame too short to hold an Ethernet header is appended as it is (the
// device refuses it).
func (e *Endpoint) appendTagged(b, frame []byte) []byte {
	if len(frame) < header.EthernetMinimumSize {
		return append(b, frame...)
	}
	b = append(b, frame[:macsSize]...)
	tci := uint16(dscpOf(frame[macsSize:])>>3)<<13 | e.opts.VLAN
	b = binary.BigEndian.AppendUint16(b, etherTypeVLAN)
	b = binary.BigEndian.AppendUint16(b, tci)
	return append(b, frame[macsSize:]...)
}

// dscpOf returns the DSCP of the IP packet after an EtherType (0 for
// anything else).
func dscpOf(typeAndPacket []byte) uint8 {
	if len(typeAndPacket) < 4 {
		return 0
	}
	pkt := typeAndPacket[2:]
	switch binary.BigEndian.Uint16(typeAndPacket) {
	case uint16(header.IPv4ProtocolNumber):
		return pkt[1] >> 2
	case uint16(header.IPv6ProtocolNumber):
		return uint8(binary.BigEndian.Uint16(pkt)>>4) >> 2
	}
	return 0
}
