// Package udpfasttest holds the test double of the fast send path's
// fallback: Fallback, a udpfast.Fallback that records what it was asked to
// send. The link devices such tests write to (Sink, VnetSink) are in
// link/linktest.
package udpfasttest

import (
	"net/netip"
	"sync"
)

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
