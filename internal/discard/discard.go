// Package discard is a link device that swallows frames at the cost of a
// write to a descriptor, a copy into a flat buffer, and counts them: the
// link under a benchmark of the paths above it (internal/bench), and the
// base of the test double linktest.Sink. Put it under link/ethlink:
//
//	dev := discard.New(2048)
//	ep, err := ethlink.New(ethlink.Options{Device: dev, MAC: mac, MTU: 1500})
package discard

import "sync"

// Device is an ethlink.Device that copies every frame into one flat buffer
// and forgets it. It is safe for concurrent use.
type Device struct {
	mu      sync.Mutex
	flat    []byte
	written uint64
	bytes   uint64
}

// New returns a Device whose flat buffer holds frames of up to size bytes
// (longer ones are cut, as a fixed-size device buffer would).
func New(size int) *Device { return &Device{flat: make([]byte, size)} }

// WriteFrames implements ethlink.Device and link.FrameWriter: it takes
// every frame.
func (d *Device) WriteFrames(frames [][]byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range frames {
		copy(d.flat, f)
		d.written++
		d.bytes += uint64(len(f))
	}
	return len(frames), nil
}

// Close implements ethlink.Device.
func (*Device) Close() error { return nil }

// Written returns how many frames and bytes the device took.
func (d *Device) Written() (frames, bytes uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written, d.bytes
}
