// Package pcap writes Ethernet frames in the classic libpcap file format, which
// Wireshark and tshark read. Timestamps come from a tcpip.Clock, so a capture
// taken on the simulated network with a manual clock is byte-for-byte
// reproducible.
//
// Plug it in with the Capture option of link/ethlink (and so of tap, raw and
// sim), which records every frame the link sends or receives, fast-path
// frames included.
package pcap

import (
	"encoding/binary"
	"io"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
)

const (
	magicMicroseconds = 0xa1b2c3d4
	linkTypeEthernet  = 1
	fileHeaderLen     = 24
	recordHeaderLen   = 16
)

// Writer appends frames to a pcap stream. It is safe for concurrent use.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	clock   tcpip.Clock
	snapLen uint32
	hdr     [recordHeaderLen]byte
	err     error
}

// NewWriter writes the pcap file header to w and returns a Writer that
// records up to snapLen bytes of each frame (0 means 65535), stamped with
// clock's time.
func NewWriter(w io.Writer, clock tcpip.Clock, snapLen uint32) (*Writer, error) {
	if snapLen == 0 {
		snapLen = 65535
	}
	var fh [fileHeaderLen]byte
	binary.LittleEndian.PutUint32(fh[0:], magicMicroseconds)
	binary.LittleEndian.PutUint16(fh[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(fh[6:], 4)
	binary.LittleEndian.PutUint32(fh[16:], snapLen)
	binary.LittleEndian.PutUint32(fh[20:], linkTypeEthernet)
	if _, err := w.Write(fh[:]); err != nil {
		return nil, err
	}
	return &Writer{w: w, clock: clock, snapLen: snapLen}, nil
}

// WriteFrame records one frame. After the first write error every later call
// returns that error and records nothing.
func (p *Writer) WriteFrame(frame []byte) error {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	caplen := uint32(len(frame))
	if caplen > p.snapLen {
		caplen = p.snapLen
	}
	binary.LittleEndian.PutUint32(p.hdr[0:], uint32(now.Unix()))
	binary.LittleEndian.PutUint32(p.hdr[4:], uint32(now.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(p.hdr[8:], caplen)
	binary.LittleEndian.PutUint32(p.hdr[12:], uint32(len(frame)))
	if _, err := p.w.Write(p.hdr[:]); err != nil {
		p.err = err
		return err
	}
	if _, err := p.w.Write(frame[:caplen]); err != nil {
		p.err = err
		return err
	}
	return nil
}
