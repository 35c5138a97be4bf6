package bench

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/policyarp"
	"github.com/mediastack/mediastack/udpfast"
)

// fastReflector sends every datagram that arrives on its ports straight
// back to its source, from the port and address it arrived on, on the fast
// paths only: a fastfilter ReceiveFunc that calls a udpfast.Sender, on the
// link's receive goroutine, with no queue and no goroutine in between.
//
// The Senders are driven by the link's one receive goroutine (a Sender is
// single-writer). Datagrams that came through netstack's lane (fragments,
// IP options), which runs on netstack's goroutines, are answered through the
// port's netstack endpoint instead.
type fastReflector struct {
	reg     *fastfilter.Registration
	lo      uint16
	senders [2][]*udpfast.Sender // [IPv4, IPv6], indexed by port - lo
	ready   atomic.Bool          // senders are set
	errs    atomic.Uint64        // datagrams not answered
}

// senderLink is what the reflector's Senders write to.
type senderLink = udpfast.Link

// newFastReflector registers ports lo..hi on filter and makes a Sender per
// port for each of locals (one address per IP version).
func newFastReflector(filter *fastfilter.Filter, table *policyarp.Table, lnk senderLink, lo, hi uint16, locals []netip.Addr) (*fastReflector, error) {
	r := &fastReflector{lo: lo}
	reg, err := filter.Register(lo, hi, r.receive)
	if err != nil {
		return nil, err
	}
	r.reg = reg
	n := int(hi) - int(lo) + 1
	// Senders driven by one goroutine share one scratch: ten thousand
	// ports cost ten thousand templates, not ten thousand batch buffers.
	scratch := udpfast.NewScratch(udpfast.DefaultBatch, 14+int(lnk.MTU()))
	for _, a := range locals {
		fam := 0
		if a.Is6() {
			fam = 1
		}
		r.senders[fam] = make([]*udpfast.Sender, n)
		for i := range n {
			port := lo + uint16(i)
			s, err := udpfast.New(udpfast.Options{
				Table:    table,
				Link:     lnk,
				Fallback: udpfast.EndpointFallback{Endpoint: reg.NetstackEndpoint(port)},
				Local:    netip.AddrPortFrom(a, port),
				Scratch:  scratch,
			})
			if err != nil {
				_ = reg.Close()
				return nil, fmt.Errorf("sender on %v: %w", netip.AddrPortFrom(a, port), err)
			}
			r.senders[fam][i] = s
		}
	}
	r.ready.Store(true)
	return r, nil
}

// receive is the ReceiveFunc: it must not block and must not keep d.
func (r *fastReflector) receive(d *fastfilter.Datagram) {
	if !r.ready.Load() {
		r.errs.Add(1)
		return
	}
	if d.ViaNetstack {
		fb := udpfast.EndpointFallback{Endpoint: r.reg.NetstackEndpoint(d.Dst.Port())}
		if fb.SendViaNetstack(d.Payload, d.Src) != nil {
			r.errs.Add(1)
		}
		return
	}
	fam := 0
	if d.Version == 6 {
		fam = 1
	}
	i := int(d.Dst.Port()) - int(r.lo)
	ss := r.senders[fam]
	if i < 0 || i >= len(ss) || ss[i] == nil {
		r.errs.Add(1)
		return
	}
	if ss[i].Send(d.Payload, d.Src) != nil {
		r.errs.Add(1)
	}
}

// stats sums the Senders' counters.
func (r *fastReflector) stats() (fast, fallbacks uint64) {
	for _, ss := range r.senders {
		for _, s := range ss {
			st := s.Stats()
			fast += st.Fast
			fallbacks += st.FallbackTotal()
		}
	}
	return fast, fallbacks
}

// close unregisters the ports. Datagrams not answered (both lanes
// refused: the link's queue and netstack's buffer full, under overload)
// are counted in unanswered, not errors: over a real link they are the
// path's loss, which the generator sees.
func (r *fastReflector) close() error { return r.reg.Close() }

// unanswered returns how many datagrams the reflector could not answer.
func (r *fastReflector) unanswered() uint64 { return r.errs.Load() }

// ringReflector is the fast reflector written as a media application
// usually is: the filter copies datagrams into the port's Ring
// (RegisterRing), and the application's goroutine takes them a batch at a
// time (Ring.ReadBatch) and sends each batch back with Sender.SendBatch,
// one link write per batch. Receiving and sending then run on two
// goroutines, and the link's write costs one call per batch.
type ringReflector struct {
	reg     *fastfilter.Registration
	ring    *fastfilter.Ring
	senders [2]*udpfast.Sender // IPv4, IPv6
	done    chan struct{}
	errs    atomic.Uint64 // datagrams not answered
}

func newRingReflector(filter *fastfilter.Filter, table *policyarp.Table, lnk senderLink, port uint16, locals []netip.Addr) (*ringReflector, error) {
	ring, err := fastfilter.NewRing(fastfilter.RingOptions{Packets: linkQueueDatagrams})
	if err != nil {
		return nil, err
	}
	r := &ringReflector{ring: ring, done: make(chan struct{})}
	if r.reg, err = filter.RegisterRing(port, port, ring); err != nil {
		return nil, err
	}
	for _, a := range locals {
		fam := 0
		if a.Is6() {
			fam = 1
		}
		r.senders[fam], err = udpfast.New(udpfast.Options{
			Table:    table,
			Link:     lnk,
			Fallback: udpfast.EndpointFallback{Endpoint: r.reg.NetstackEndpoint(port)},
			Local:    netip.AddrPortFrom(a, port),
		})
		if err != nil {
			_ = r.reg.Close()
			return nil, fmt.Errorf("sender on %v: %w", netip.AddrPortFrom(a, port), err)
		}
	}
	go r.loop()
	return r, nil
}

func (r *ringReflector) loop() {
	defer close(r.done)
	const batch = udpfast.DefaultBatch
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, fastfilter.DefaultRingSlotSize)
	}
	sizes := make([]int, batch)
	srcs := make([]netip.AddrPort, batch)
	var payloads [2][][]byte
	var dsts [2][]netip.AddrPort
	for {
		n, err := r.ring.ReadBatch(bufs, sizes, srcs, time.Time{})
		if err != nil {
			return // the ring is closed
		}
		for f := range payloads {
			payloads[f], dsts[f] = payloads[f][:0], dsts[f][:0]
		}
		for i := range n {
			f := 0
			if srcs[i].Addr().Is6() {
				f = 1
			}
			payloads[f] = append(payloads[f], bufs[i][:sizes[i]])
			dsts[f] = append(dsts[f], srcs[i])
		}
		for f, s := range r.senders {
			switch {
			case len(payloads[f]) == 0:
			case s == nil:
				r.errs.Add(uint64(len(payloads[f])))
			default:
				if sent, err := s.SendBatch(payloads[f], dsts[f]); err != nil {
					r.errs.Add(uint64(len(payloads[f]) - sent))
				}
			}
		}
	}
}

// close unregisters the port and stops the goroutine; like
// fastReflector.close, it does not count unanswered datagrams as errors.
func (r *ringReflector) close() error {
	err := r.reg.Close()
	r.ring.Close()
	<-r.done
	return err
}

// unanswered returns how many datagrams the reflector could not answer.
func (r *ringReflector) unanswered() uint64 { return r.errs.Load() }
