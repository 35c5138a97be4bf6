// Package vnet is the virtio-net header (struct virtio_net_hdr,
// linux/virtio_net.h) that a TAP opened with IFF_VNET_HDR, or an AF_PACKET
// socket with PACKET_VNET_HDR, puts before every frame, and the checksum
// completion that goes with it. It is the link layer's vocabulary for
// offloads, as gVisor's header/virtionet.go and wireguard-go's tun package
// keep it beside the device code:
//
//   - Hdr says whether a frame is a large packet the receiver is to segment
//     (GSOType, GSOSize: TCP over IPv4 or IPv6, or UDP with GSOUDPL4) and
//     whether its checksum is still to be filled in (FlagNeedsCsum).
//   - Packet is one such frame on its way to a device: the header and the
//     frame's bytes in pieces, written with one writev.
//   - CompletePartial fills in a checksum left partial (NEEDS_CSUM, Linux's
//     CHECKSUM_PARTIAL), CompleteChecksum one whose start nobody said.
//
// Links (link/tap, link/raw, link/ethlink) and the offloads that write
// through them (tcpoffload, udpfast) share these types; the package itself
// depends on nothing of mediastack's but its checksum routine.
package vnet

import (
	"encoding/binary"
	"errors"
)

// Hdr is struct virtio_net_hdr, the header a TAP opened with IFF_VNET_HDR
// puts before every frame in both directions. It says whether the frame is
// a large packet the receiver is to segment (GSOType, GSOSize) and whether
// its checksum is still to be filled in (FlagNeedsCsum: the receiver sums
// the bytes from CsumStart to the end and stores the result at
// CsumStart+CsumOffset).
type Hdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // length of the headers (Ethernet, IP, TCP or UDP): a hint
	GSOSize    uint16 // payload bytes per segment (the MSS, or a datagram's payload)
	CsumStart  uint16 // offset from the frame's start where summing begins
	CsumOffset uint16 // offset of the checksum field from CsumStart
}

// HdrSize is the size of Hdr on the wire (a TAP's default
// TUNSETVNETHDRSZ).
const HdrSize = 10

// Flags of Hdr.
const (
	FlagNeedsCsum = 1 // checksum to be completed from CsumStart
	FlagDataValid = 2 // checksum already verified (inbound only)
)

// GSO types of Hdr.
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3 // UDP fragmentation offload (UFO), not used here
	GSOTCPv6 = 4
	// GSOUDPL4 is UDP segmentation (Linux's UDP GSO, USO): one UDP header
	// and a payload the receiver cuts into datagrams of GSOSize bytes (the
	// last may be shorter), each with its own IP and UDP header.
	GSOUDPL4 = 5
	GSOECN   = 0x80 // flag: the TCP packet carries ECN (CWR on the first segment)
)

// ErrShortHdr is returned by Unmarshal for fewer than HdrSize bytes.
var ErrShortHdr = errors.New("vnet: virtio-net header shorter than 10 bytes")

// MarshalTo writes h into b[:HdrSize]. The fields are in the host's byte
// order: a TAP reads the legacy virtio header in native order unless told
// otherwise (TUNSETVNETLE), and Linux hosts are little-endian in practice.
func (h *Hdr) MarshalTo(b []byte) {
	_ = b[HdrSize-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}

// Unmarshal reads h from b.
func (h *Hdr) Unmarshal(b []byte) error {
	if len(b) < HdrSize {
		return ErrShortHdr
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.NativeEndian.Uint16(b[2:])
	h.GSOSize = binary.NativeEndian.Uint16(b[4:])
	h.CsumStart = binary.NativeEndian.Uint16(b[6:])
	h.CsumOffset = binary.NativeEndian.Uint16(b[8:])
	return nil
}

// Packet is one frame for a device that takes virtio-net headers: its
// header and the frame's bytes, possibly in pieces (written with one
// writev).
type Packet struct {
	Hdr   Hdr
	Parts [][]byte
}

// AppendPacket extends pkts by one packet of header h with no parts and
// returns it for the caller to fill in. It reuses the slot in pkts' spare
// capacity, Parts' backing array included, so a caller that passes the same
// slice back (as pkts[:0]) allocates nothing once warmed up.
func AppendPacket(pkts []Packet, h Hdr) ([]Packet, *Packet) {
	i := len(pkts)
	if i < cap(pkts) {
		pkts = pkts[:i+1]
	} else {
		pkts = append(pkts, Packet{})
	}
	p := &pkts[i]
	p.Hdr, p.Parts = h, p.Parts[:0]
	return pkts, p
}
