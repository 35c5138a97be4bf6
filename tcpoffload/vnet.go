package tcpoffload

import (
	"encoding/binary"
	"errors"
)

// VirtioNetHdr is struct virtio_net_hdr (linux/virtio_net.h), the header a
// TAP opened with IFF_VNET_HDR puts before every frame in both directions.
// It says whether the frame is a large packet the receiver is to segment
// (GSOType, GSOSize) and whether its checksum is still to be filled in
// (FlagNeedsCsum: the receiver sums the bytes from CsumStart to the end and
// stores the result at CsumStart+CsumOffset).
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // length of the headers (Ethernet, IP, TCP): a hint
	GSOSize    uint16 // payload bytes per segment (the MSS)
	CsumStart  uint16 // offset from the frame's start where summing begins
	CsumOffset uint16 // offset of the checksum field from CsumStart
}

// VirtioNetHdrSize is the size of VirtioNetHdr on the wire (a TAP's
// default TUNSETVNETHDRSZ).
const VirtioNetHdrSize = 10

// Flags and GSO types of VirtioNetHdr.
const (
	VirtioNetHdrFNeedsCsum = 1 // checksum to be completed from CsumStart
	VirtioNetHdrFDataValid = 2 // checksum already verified (inbound only)

	VirtioNetHdrGSONone  = 0
	VirtioNetHdrGSOTCPv4 = 1
	VirtioNetHdrGSOUDP   = 3
	VirtioNetHdrGSOTCPv6 = 4
	// VirtioNetHdrGSOUDPL4 is UDP segmentation (Linux's UDP GSO, USO):
	// one UDP header and a payload the receiver cuts into datagrams of
	// GSOSize bytes (the last may be shorter), each with its own IP and
	// UDP header.
	VirtioNetHdrGSOUDPL4 = 5
	VirtioNetHdrGSOECN   = 0x80
)

// ErrShortVnetHdr is returned by Unmarshal for fewer than VirtioNetHdrSize
// bytes.
var ErrShortVnetHdr = errors.New("tcpoffload: virtio-net header shorter than 10 bytes")

// MarshalTo writes h into b[:VirtioNetHdrSize]. The fields are in the host's
// byte order: a TAP reads the legacy virtio header in native order unless
// told otherwise (TUNSETVNETLE), and Linux hosts are little-endian in
// practice.
func (h *VirtioNetHdr) MarshalTo(b []byte) {
	_ = b[VirtioNetHdrSize-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}

// Unmarshal reads h from b.
func (h *VirtioNetHdr) Unmarshal(b []byte) error {
	if len(b) < VirtioNetHdrSize {
		return ErrShortVnetHdr
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.NativeEndian.Uint16(b[2:])
	h.GSOSize = binary.NativeEndian.Uint16(b[4:])
	h.CsumStart = binary.NativeEndian.Uint16(b[6:])
	h.CsumOffset = binary.NativeEndian.Uint16(b[8:])
	return nil
}

// VnetPacket is one frame for a TAP with IFF_VNET_HDR: its virtio-net header
// and the frame's bytes, possibly in pieces (written with one writev).
type VnetPacket struct {
	Hdr   VirtioNetHdr
	Parts [][]byte
}
