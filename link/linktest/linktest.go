// Package linktest holds test doubles for link devices: Sink, an in-memory
// ethlink.Device that copies every frame into a flat buffer (as a write to
// a file descriptor would) and can record frames or refuse them as a full
// queue would; VnetSink, a Sink that also takes packets behind virtio-net
// headers (an ethlink.VnetDevice) and cuts UDP trains as Linux does; and
// CutUDPTrain, that cut on its own.
//
// Use a Sink under link/ethlink to get a netstack LinkEndpoint whose raw and
// netstack writes both end in the same place:
//
//	sink := linktest.NewSink(1514)
//	ep, _ := ethlink.New(ethlink.Options{Device: sink, MAC: mac, MTU: 1500})
package linktest

import (
	"sync"

	"github.com/mediastack/mediastack/internal/discard"
	"github.com/mediastack/mediastack/link"
)

// Sink is an ethlink.Device that swallows frames (a discard.Device) and
// can record them or refuse them.
type Sink struct {
	*discard.Device
	mu     sync.Mutex
	record bool
	frames [][]byte
	room   int // frames accepted before ErrQueueFull; < 0: unlimited
}

// NewSink returns a Sink whose flat buffer holds frames of up to size bytes
// (longer ones are cut, as a fixed-size device buffer would).
func NewSink(size int) *Sink { return &Sink{Device: discard.New(size), room: -1} }

// WriteFrames implements ethlink.Device and link.FrameWriter. Beyond the
// room SetRoom gave it, it returns link.ErrQueueFull.
func (s *Sink) WriteFrames(frames [][]byte) (int, error) {
	s.mu.Lock()
	n := len(frames)
	if s.room >= 0 {
		n = min(n, s.room)
		s.room -= n
	}
	if s.record {
		for _, f := range frames[:n] {
			s.frames = append(s.frames, append([]byte(nil), f...))
		}
	}
	s.mu.Unlock()
	n, _ = s.Device.WriteFrames(frames[:n])
	if n < len(frames) {
		return n, link.ErrQueueFull
	}
	return n, nil
}

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
