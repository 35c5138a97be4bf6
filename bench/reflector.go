package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

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
	errs    atomic.Uint64        // sends that failed, datagrams not answered
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

func (r *fastReflector) close() error {
	err := r.reg.Close()
	if n := r.errs.Load(); n > 0 {
		err = errors.Join(err, fmt.Errorf("fast reflector: %d datagrams not answered", n))
	}
	return err
}
