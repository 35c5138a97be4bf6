// Package udpfasttest holds test doubles for the fast send path: Sink, an
// in-memory link device that copies every frame into a flat buffer (as a
// write to a file descriptor would) and can record frames or refuse them as
// a full queue would; and Fallback, a udpfast.Fallback that records what it
// was asked to send.
//
// Use a Sink under link/ethlink to get a netstack LinkEndpoint whose raw and
// netstack writes both end in the same place:
//
//	sink := udpfasttest.NewSink(1514)
//	ep, _ := ethlink.New(ethlink.Options{Device: sink, MAC: mac, MTU: 1500})
package udpfasttest

import (
	"net/netip"
	"sync"

	"github.com/mediastack/mediastack/link"
)

// Sink is an ethlink.Device that swallows frames.
type Sink struct {
	mu      sync.Mutex
	flat    []byte
	record  bool
	frames  [][]byte
	room    int // frames accepted before ErrQueueFull; < 0: unlimited
	written uint64
	bytes   uint64
}

// NewSink returns a Sink whose flat buffer holds frames of up to size bytes
// (longer ones are cut, as a fixed-size device buffer would).
func NewSink(size int) *Sink { return &Sink{flat: make([]byte, size), room: -1} }

// WriteFrames implements ethlink.Device and link.FrameWriter.
func (s *Sink) WriteFrames(frames [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range frames {
		if s.room == 0 {
			return i, link.ErrQueueFull
		}
		if s.room > 0 {
			s.room--
		}
		copy(s.flat, f)
		if s.record {
			s.frames = append(s.frames, append([]byte(nil), f...))
		}
		s.written++
		s.bytes += uint64(len(f))
	}
	return len(frames), nil
}

// Close implements ethlink.Device.
func (*Sink) Close() error { return nil }

// Record starts (or stops) keeping a copy of every frame.
func (s *Sink) Record(on bool) {
	s.mu.Lock()
	s.record = on
	s.mu.Unlock()
}

// Frames returns the recorded frames and forgets them.
func (s *Sink) Frames() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.frames
	s.frames = nil
	return f
}

// SetRoom makes the sink accept n more frames and then report
// link.ErrQueueFull; n < 0 removes the limit.
func (s *Sink) SetRoom(n int) {
	s.mu.Lock()
	s.room = n
	s.mu.Unlock()
}

// Written returns how many frames and bytes the sink took.
func (s *Sink) Written() (frames, bytes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written, s.bytes
}

// Fallback records the datagrams a Sender hands to netstack and returns Err
// for each (nil: success).
type Fallback struct {
	mu   sync.Mutex
	Sent []Datagram
	Err  error
}

// Datagram is one recorded fallback send.
type Datagram struct {
	Payload []byte
	Dst     netip.AddrPort
}

// SendViaNetstack implements udpfast.Fallback.
func (f *Fallback) SendViaNetstack(payload []byte, dst netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	f.Sent = append(f.Sent, Datagram{Payload: append([]byte(nil), payload...), Dst: dst})
	return nil
}

// Datagrams returns a copy of what was sent so far.
func (f *Fallback) Datagrams() []Datagram {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Datagram(nil), f.Sent...)
}
