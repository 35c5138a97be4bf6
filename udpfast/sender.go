package udpfast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/tcpipaddr"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/policyarp"
)

// Defaults matching netstack's own UDP sends (ipv4.DefaultTTL,
// ipv6.DefaultTTL; TOS/traffic class 0; PMTUDiscoveryWant, which sets DF).
const (
	DefaultTTL   = 64
	DefaultBatch = 32
)

// Errors returned without sending anything.
var (
	ErrBadDestination = errors.New("udpfast: destination is not a valid address and port of the sender's family")
	ErrBatchShape     = errors.New("udpfast: SendBatch needs one destination, or one per payload")
)

// Link is where fast frames go: a link endpoint with a raw frame write, such
// as link/ethlink (and so tap, raw and sim). It must be the link of the
// policy ARP table's NIC.
type Link interface {
	link.FrameWriter
	MTU() uint32
	LinkAddress() tcpip.LinkAddress
}

// Options configure a Sender.
type Options struct {
	// Table is the policy ARP table of the sender's NIC; Local's port must
	// be inside its range. Required.
	Table *policyarp.Table
	// Link is the table NIC's link endpoint. Required.
	Link Link
	// Fallback sends through netstack from Local (see EndpointFallback).
	// Required.
	Fallback Fallback
	// Local is the address and port the sender owns; the address must be
	// assigned to the table's NIC. Required.
	Local netip.AddrPort
	// TTL is the IPv4 TTL / IPv6 hop limit (0: DefaultTTL, netstack's).
	TTL uint8
	// TOS is the IPv4 TOS / IPv6 traffic class byte: DSCP << 2 | ECN
	// (default 0, netstack's). Set the fallback endpoint's TOS to match.
	TOS uint8
	// AllowFragmentation clears IPv4's don't-fragment bit and gives every
	// datagram an identification, from IDs. The default sets DF with ID 0,
	// as netstack does for UDP (RFC 6864 atomic datagrams).
	AllowFragmentation bool
	// IDs numbers the datagrams of AllowFragmentation, and those the
	// sender fragments itself at a lowered path MTU (IPv4 and IPv6). Give
	// every sender of a stack the same: senders to one peer then never
	// repeat each other's IDs. nil: the sender gets counters of its own,
	// seeded from the stack's seed and its port (with DF, on first need).
	IDs *IDs
	// Scratch holds the frames being built. Senders used from one goroutine
	// may share one; nil gives the sender its own of DefaultBatch frames.
	Scratch *Scratch
}

// Scratch is the memory frames are built in: caller-owned, reused for every
// datagram, so sending allocates nothing. Not safe for concurrent use: share
// one only between senders driven by the same goroutine.
type Scratch struct {
	bufs     [][]byte
	frames   [][]byte
	size     int
	trainHdr [maxHeaderLen]byte
	// frag and fragFrames hold the fragments of one datagram
	// (sendFragments), grown to the largest datagram fragmented.
	frag       []byte
	fragFrames [][]byte
}

// NewScratch returns room for batches of up to n frames (n ≥ 1) of size
// bytes each (header plus payload; 1514 covers a 1500-byte MTU). Buffers are
// allocated on first use and grown only if the MTU grows.
func NewScratch(n, size int) *Scratch {
	if n < 1 {
		n = 1
	}
	return &Scratch{bufs: make([][]byte, n), frames: make([][]byte, n), size: size}
}

// buf returns scratch buffer i with room for n bytes.
func (sc *Scratch) buf(i, n int) []byte {
	b := sc.bufs[i]
	if cap(b) < n {
		b = make([]byte, max(n, sc.size))
		sc.bufs[i] = b
	}
	return b[:cap(b)]
}

// Sender sends UDP datagrams from one local address and port, as raw frames
// when the port's policy ARP entry allows and through netstack otherwise.
//
// A Sender is driven by one goroutine at a time (like a socket's writer);
// Stats may be read from any goroutine.
type Sender struct {
	table  *policyarp.Table
	slot   *policyarp.Slot
	link   Link
	fb     Fallback
	local  netip.AddrPort
	localT tcpip.Address
	v6     bool
	ipLen  int // IP + UDP header bytes counted against the MTU
	ttl    uint8
	tos    uint8
	df     bool
	ids    *IDs           // with !df
	idCtr  *atomic.Uint32 // ids' counter of (local, tmplDst), with !df
	sc     *Scratch
	one    [1][]byte
	// fragMTU is the path MTU prepare found lower than the link's, for
	// sendFragments.
	fragMTU int

	// tmpl is the template of the last destination, tmplDst: one of
	// tmpls, which keeps one per destination of the port, indexed by
	// policyarp's Dest.Index, so that a port sending to many peers in turn
	// builds each header once. A template matches its entry (pointer
	// identity: entries are immutable, so an unchanged pointer means an
	// unchanged MAC) and destination.
	tmpl      *template
	tmplEntry *policyarp.Entry
	tmplDest  *policyarp.Dest
	tmplDst   netip.AddrPort
	tmplCache *destTemplate // the destTemplate tmpl belongs to
	tmpls     []*destTemplate
	// byDst finds a destination's template from its address and port,
	// without the table's lookup, when the port alternates between
	// destinations: a cache of two-way buckets, made for the second
	// destination.
	byDst []*destTemplate

	c counters
}

// destTemplate is the template of one destination of the port.
type destTemplate struct {
	tmpl  template
	entry *policyarp.Entry
	dest  *policyarp.Dest
	dst   netip.AddrPort
	idCtr *atomic.Uint32 // IDs' counter of (local, dst), with !df
}

// maxByDst bounds Sender.byDst.
const maxByDst = 256

// New validates opts and returns a Sender.
func New(opts Options) (*Sender, error) {
	switch {
	case opts.Table == nil:
		return nil, errors.New("udpfast: Options.Table is nil")
	case opts.Link == nil:
		return nil, errors.New("udpfast: Options.Link is nil")
	case opts.Fallback == nil:
		return nil, errors.New("udpfast: Options.Fallback is nil")
	case !opts.Local.IsValid() || opts.Local.Port() == 0:
		return nil, fmt.Errorf("udpfast: local address %v needs an IP address and a port", opts.Local)
	}
	if len(opts.Link.LinkAddress()) != header.EthernetAddressSize {
		return nil, errors.New("udpfast: the link has no Ethernet address")
	}
	local := netip.AddrPortFrom(opts.Local.Addr().Unmap(), opts.Local.Port())
	slot := opts.Table.Slot(local.Port())
	if slot == nil {
		return nil, fmt.Errorf("udpfast: local port %d is outside the policy ARP table's range", local.Port())
	}
	localT := tcpipaddr.From(local.Addr())
	proto, ipLen := header.IPv4ProtocolNumber, header.IPv4MinimumSize+header.UDPMinimumSize
	if local.Addr().Is6() {
		proto, ipLen = header.IPv6ProtocolNumber, header.IPv6MinimumSize+header.UDPMinimumSize
	}
	// NIC 0: with a NIC given, netstack answers yes for any IPv4 address.
	if opts.Table.Stack().CheckLocalAddress(0, proto, localT) != opts.Table.NIC() {
		return nil, fmt.Errorf("udpfast: %s is not an address of NIC %d", local.Addr(), opts.Table.NIC())
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Scratch == nil {
		opts.Scratch = NewScratch(DefaultBatch, ethLen+int(opts.Link.MTU()))
	}
	if opts.AllowFragmentation && opts.IDs == nil {
		opts.IDs = newSenderIDs(opts.Table.Stack().Seed(), local.Port())
	}
	return &Sender{
		table:  opts.Table,
		slot:   slot,
		link:   opts.Link,
		fb:     opts.Fallback,
		local:  local,
		localT: localT,
		v6:     local.Addr().Is6(),
		ipLen:  ipLen,
		ttl:    opts.TTL,
		tos:    opts.TOS,
		df:     !opts.AllowFragmentation,
		ids:    opts.IDs,
		sc:     opts.Scratch,
	}, nil
}

// SetTOS changes the IPv4 TOS / IPv6 traffic class byte of the datagrams
// sent from now on (Options.TOS); the template is rebuilt at the next send.
// Like Send, it must not run concurrently with the sender's other methods.
func (s *Sender) SetTOS(tos uint8) {
	if tos != s.tos {
		s.tos = tos
		// Every destination's template is built again at its next send.
		for _, c := range s.tmpls {
			if c != nil {
				c.tmpl.n, c.entry = 0, nil
			}
		}
		s.tmplEntry = nil
	}
}

// Local returns the address and port the sender sends from.
func (s *Sender) Local() netip.AddrPort { return s.local }

// Stats returns a snapshot of the sender's counters.
func (s *Sender) Stats() Stats { return s.c.snapshot() }

// fastOK is what prepare returns when the datagram can go fast.
const fastOK = Reason(255)

// errBadDst is what prepare returns for a destination nothing can send to.
const errBadDst = Reason(254)

// fragmentOK is what prepare returns when the datagram goes fast as IP
// fragments of s.fragMTU bytes (sendFragments).
const fragmentOK = Reason(253)

// prepare makes the template ready for a datagram of n payload bytes to dst,
// or says why it cannot go fast. The common case (same destination as the
// last datagram, same entry) is one atomic load and two comparisons; another
// destination of the port adds a lookup in the port's destination set.
func (s *Sender) prepare(dst netip.AddrPort, n int) Reason {
	var e *policyarp.Entry
	if dst == s.tmplDst && s.tmplDest != nil {
		e = s.tmplDest.Load()
	} else if c := s.cached(dst); c != nil {
		if e = c.dest.Load(); e == c.entry {
			s.tmpl, s.tmplEntry, s.tmplDest, s.tmplDst, s.idCtr, s.tmplCache = &c.tmpl, e, c.dest, dst, c.idCtr, c
		}
	}
	if e != s.tmplEntry || e == nil {
		if r := s.retemplate(dst); r != fastOK {
			return r
		}
		e = s.tmplEntry
	}
	if linkMTU, mtu := s.link.MTU(), e.PathMTUFor(s.link.MTU()); n+s.ipLen > int(mtu) {
		// A router lowered the path MTU: fragment at it, as Linux does
		// with IP_PMTUDISC_WANT (netstack would fragment at the link MTU
		// only, and the router drop the pieces). Beyond the link MTU
		// without a report, netstack fragments, at the link MTU.
		if mtu < linkMTU && n <= s.maxUDPPayload() {
			s.fragMTU = int(mtu)
			return fragmentOK
		}
		return ReasonTooBig
	}
	return fastOK
}

// retemplate finds dst's entry and template, after a change of destination
// or entry. Without a usable entry it asks the table to resolve dst: when
// netstack knows the next hop already, the entry is usable at once and this
// very datagram goes fast.
func (s *Sender) retemplate(dst netip.AddrPort) Reason {
	if a := dst.Addr(); a.Is4In6() {
		dst = netip.AddrPortFrom(a.Unmap(), dst.Port())
	}
	if !dst.Addr().IsValid() || dst.Port() == 0 || dst.Addr().Is6() != s.v6 {
		return errBadDst
	}
	s.tmplEntry, s.tmplDest = nil, nil // until the checks below pass
	dstT := tcpipaddr.From(dst.Addr())
	d := s.slot.Find(dstT)
	var e *policyarp.Entry
	if d != nil {
		if e = d.Load(); e != nil && e.Dst != dstT {
			e = nil
		}
	}
	if r := s.entryReason(e); r != fastOK {
		if !r.resolves() {
			return r
		}
		// Errors here are a bad destination family, which the fallback
		// reports too; the table counts what it does.
		if ne, err := s.table.Resolve(s.local.Port(), s.localT, dstT); err != nil || !ne.Usable() {
			return r
		}
		if d = s.slot.Find(dstT); d == nil {
			return r
		}
		if e = d.Load(); e == nil || e.Dst != dstT || s.entryReason(e) != fastOK {
			return r
		}
	}
	c := s.destTemplate(e.Index)
	if c.entry != e || c.dst != dst || c.dest != d {
		if dst != c.dst || c.tmpl.n == 0 || string(c.tmpl.hdr[6:12]) != string(s.link.LinkAddress()) {
			c.tmpl.build(&templateFields{
				srcMAC:  s.link.LinkAddress(),
				dstMAC:  e.MAC,
				src:     s.localT,
				dst:     e.Dst,
				srcPort: s.local.Port(),
				dstPort: dst.Port(),
				ttl:     s.ttl,
				tos:     s.tos,
				df:      s.df,
			})
			if !s.df {
				c.idCtr = s.ids.counter(s.localT, e.Dst)
			}
		} else {
			c.tmpl.setDstMAC(e.MAC)
		}
		c.entry, c.dst, c.dest = e, dst, d
		s.remember(c)
	}
	s.tmpl, s.tmplEntry, s.tmplDest, s.tmplDst, s.idCtr, s.tmplCache = &c.tmpl, e, d, dst, c.idCtr, c
	return fastOK
}

// destTemplate returns the template of the port's destination i, made the
// first time the port reaches that many destinations.
func (s *Sender) destTemplate(i int) *destTemplate {
	if i >= len(s.tmpls) {
		s.tmpls = append(s.tmpls, make([]*destTemplate, i+1-len(s.tmpls))...)
	}
	if s.tmpls[i] == nil {
		s.tmpls[i] = new(destTemplate)
	}
	return s.tmpls[i]
}

// dstHash mixes dst's address and port; use its top bits.
func dstHash(dst netip.AddrPort) uint64 {
	var x uint64
	if a := dst.Addr(); a.Is4() {
		b := a.As4()
		x = uint64(binary.LittleEndian.Uint32(b[:]))
	} else {
		b := a.As16()
		x = binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	}
	return (x ^ uint64(dst.Port())<<32) * 0x9e3779b97f4a7c15
}

// cached returns dst's template from byDst, or nil.
func (s *Sender) cached(dst netip.AddrPort) *destTemplate {
	if len(s.byDst) == 0 {
		return nil
	}
	mask := uint64(len(s.byDst) - 1)
	h := dstHash(dst) >> 56 // the top bits: a product mixes upwards
	if c := s.byDst[h&mask]; c != nil && c.dst == dst {
		return c
	}
	if c := s.byDst[(h+1)&mask]; c != nil && c.dst == dst {
		return c
	}
	return nil
}

// remember puts c in byDst, once the port has a second destination.
func (s *Sender) remember(c *destTemplate) {
	if s.byDst == nil {
		if len(s.tmpls) < 2 {
			return
		}
		n := 8
		for n < 2*s.table.MaxDestinations() && n < maxByDst {
			n *= 2
		}
		s.byDst = make([]*destTemplate, n)
		for _, o := range s.tmpls {
			if o != nil && o != c && o.dest != nil {
				s.remember(o)
			}
		}
	}
	mask := uint64(len(s.byDst) - 1)
	h := dstHash(c.dst) >> 56
	switch i, j := h&mask, (h+1)&mask; {
	case s.byDst[i] == nil || s.byDst[i] == c || s.byDst[i].dst == c.dst:
		s.byDst[i] = c
	case s.byDst[j] == nil || s.byDst[j] == c || s.byDst[j].dst == c.dst:
		s.byDst[j] = c
	default:
		s.byDst[j] = s.byDst[i]
		s.byDst[i] = c
	}
}

// entryReason says why e (dst's entry, nil if none) cannot be used for a
// fast send, or fastOK.
func (s *Sender) entryReason(e *policyarp.Entry) Reason {
	switch {
	case e == nil && s.slot.Full():
		return ReasonDstChanged
	case e == nil:
		return ReasonNoEntry
	case e.Local != s.localT:
		return ReasonDstChanged
	}
	switch e.State {
	case policyarp.Valid, policyarp.Static:
	case policyarp.Resolving:
		return ReasonUnresolved
	case policyarp.Aged:
		return ReasonAged
	case policyarp.Invalidated:
		return ReasonInvalidated
	case policyarp.Failed:
		return ReasonUnreachable
	default:
		return ReasonUnsupported
	}
	return fastOK
}

// nextIDs reserves the IPv4 IDs of n datagrams to the template's
// destination and returns the first (0 with DF, as netstack sends).
func (s *Sender) nextIDs(n int) uint16 {
	if s.df {
		return 0
	}
	return take(s.idCtr, n)
}

// Send sends payload to dst: as a raw frame when the port's entry is valid
// for dst, else through netstack, which makes the table resolve dst's next
// hop so that the following datagrams go fast. payload is not retained.
func (s *Sender) Send(payload []byte, dst netip.AddrPort) error {
	switch r := s.prepare(dst, len(payload)); r {
	case fastOK:
	case fragmentOK:
		return s.fragmentOrFallback(payload, dst)
	case errBadDst:
		return ErrBadDestination
	default:
		return s.fallback(r, payload, dst)
	}
	s.one[0] = s.tmpl.fill(s.sc.buf(0, s.tmpl.n+len(payload)), payload, s.nextIDs(1))
	n, err := s.link.WriteFrames(s.one[:])
	s.one[0] = nil
	add(&s.c.linkWrites, 1)
	if n == 1 {
		add(&s.c.fast, 1)
		return nil
	}
	return s.fallback(linkReason(err), payload, dst)
}

// SendBatch sends payloads[i] to dsts[i] (or all to dsts[0] when dsts has
// one element), in order. Consecutive datagrams that can go fast are written
// to the link in one WriteFrames call (up to the scratch's batch size);
// the others go through netstack in their place in the sequence. On a link
// that segments UDP (link.UDPSegmenter: a TAP with UDPSegmentation), a run
// of datagrams to one destination, all of one size but the last, which may
// be shorter, is written as one train the kernel cuts: one write for the
// run. It returns how many datagrams were sent; on error, payloads[n:] were
// not.
func (s *Sender) SendBatch(payloads [][]byte, dsts []netip.AddrPort) (int, error) {
	if len(dsts) != 1 && len(dsts) != len(payloads) {
		return 0, ErrBatchShape
	}
	b := batch{s: s, payloads: payloads, dsts: dsts}
	if seg, ok := s.link.(link.UDPSegmenter); ok {
		if max := seg.MaxUDPSegments(); max >= 2 {
			b.seg, b.maxTrain = seg, max
		}
	}
	for i, p := range payloads {
		dst := b.dst(i)
		if b.trainLen > 0 && dst != b.trainDst {
			if n, err := b.flushTrain(); err != nil {
				return n, err
			}
		}
		switch r := s.prepare(dst, len(p)); r {
		case fastOK:
			if b.seg != nil {
				if n, err := b.addToTrain(i, p, dst); err != nil {
					return n, err
				}
				continue
			}
			if n, err := b.addFrame(i, p); err != nil {
				return n, err
			}
		case fragmentOK:
			if n, err := b.flush(); err != nil {
				return n, err
			}
			if err := s.fragmentOrFallback(p, dst); err != nil {
				return i, err
			}
		case errBadDst:
			if n, err := b.flush(); err != nil {
				return n, err
			}
			return i, ErrBadDestination
		default:
			if n, err := b.flush(); err != nil {
				return n, err
			}
			if err := s.fallback(r, p, dst); err != nil {
				return i, err
			}
		}
	}
	if n, err := b.flush(); err != nil {
		return n, err
	}
	return len(payloads), nil
}

// batch tracks the datagrams of a SendBatch not yet written: frames
// first..first+pending-1 sit in the scratch's frames, and on a segmenting
// link datagrams trainFirst..trainFirst+trainLen-1 wait to be written as one
// train, behind those frames.
type batch struct {
	s              *Sender
	payloads       [][]byte
	dsts           []netip.AddrPort
	first, pending int

	seg        link.UDPSegmenter // nil: the link does not segment
	maxTrain   int
	trainFirst int
	trainLen   int
	trainBytes int
	trainDst   netip.AddrPort
	trainEntry *policyarp.Entry
	trainTmpl  template       // as it was for the train's first datagram
	trainIDs   *atomic.Uint32 // the template's ID counter (nil with DF)
}

func (b *batch) dst(i int) netip.AddrPort {
	if len(b.dsts) == 1 {
		return b.dsts[0]
	}
	return b.dsts[i]
}

// addFrame builds datagram i's frame in the scratch, behind the pending
// ones, writing those first when the scratch is full.
func (b *batch) addFrame(i int, p []byte) (int, error) {
	s := b.s
	if b.pending == len(s.sc.frames) {
		if n, err := b.flushFrames(); err != nil {
			return n, err
		}
	}
	if b.pending == 0 {
		b.first = i
	}
	s.sc.frames[b.pending] = s.tmpl.fill(s.sc.buf(b.pending, s.tmpl.n+len(p)), p, s.nextIDs(1))
	b.pending++
	return 0, nil
}

// addToTrain appends datagram i (which prepare cleared for dst) to the
// train, or starts a new one when it cannot join: another entry (the next
// hop's MAC changed), a payload longer than the train's segments or after a
// shorter one, a full train.
func (b *batch) addToTrain(i int, p []byte, dst netip.AddrPort) (int, error) {
	s := b.s
	if b.trainLen > 0 {
		seg := len(b.payloads[b.trainFirst])
		last := len(b.payloads[b.trainFirst+b.trainLen-1])
		if s.tmplEntry != b.trainEntry || len(p) > seg || last < seg ||
			b.trainLen == b.maxTrain || b.trainBytes+len(p) > maxTrainPayload {
			if n, err := b.flushTrain(); err != nil {
				return n, err
			}
		}
	}
	if len(p) == 0 { // a train's segments cannot be empty
		if n, err := b.flushTrain(); err != nil {
			return n, err
		}
		return b.addFrame(i, p)
	}
	if b.trainLen == 0 {
		b.trainFirst, b.trainBytes = i, 0
		b.trainDst, b.trainEntry = dst, s.tmplEntry
		b.trainTmpl = *s.tmpl
		b.trainIDs = s.idCtr
	}
	b.trainLen++
	b.trainBytes += len(p)
	return 0, nil
}

// flushTrain writes the waiting train: a lone datagram joins the frames,
// which keeps one write for a batch spread over many destinations; a longer
// train goes out after the frames, in one write. What the link refuses goes
// through netstack. On error it returns the index of the first datagram not
// sent.
func (b *batch) flushTrain() (int, error) {
	k := b.trainLen
	if k == 0 {
		return 0, nil
	}
	b.trainLen = 0
	s := b.s
	first := b.trainFirst
	// The kernel numbers the datagrams it cuts from a train up from the
	// first one's ID: reserve k in a row. (With DF the ID is 0 and the
	// kernel counts up from it, which RFC 6864 allows for atomic
	// datagrams.)
	var id uint16
	if b.trainIDs != nil {
		id = take(b.trainIDs, k)
	}
	if k == 1 {
		p := b.payloads[first]
		if b.pending == len(s.sc.frames) {
			if n, err := b.flushFrames(); err != nil {
				return n, err
			}
		}
		if b.pending == 0 {
			b.first = first
		}
		s.sc.frames[b.pending] = b.trainTmpl.fill(s.sc.buf(b.pending, b.trainTmpl.n+len(p)), p, id)
		b.pending++
		return 0, nil
	}
	if n, err := b.flushFrames(); err != nil {
		return n, err
	}
	hdr := b.trainTmpl.trainHeader(s.sc.trainHdr[:], b.trainBytes, id)
	err := b.seg.WriteUDPSegments(hdr, b.payloads[first:first+k])
	add(&s.c.linkWrites, 1)
	if err == nil {
		add(&s.c.fast, uint64(k))
		add(&s.c.trains, 1)
		return 0, nil
	}
	r := linkReason(err)
	for j := first; j < first+k; j++ {
		if err := s.fallback(r, b.payloads[j], b.dst(j)); err != nil {
			return j, err
		}
	}
	return 0, nil
}

// flush writes everything waiting, in order.
func (b *batch) flush() (int, error) {
	if n, err := b.flushTrain(); err != nil {
		return n, err
	}
	return b.flushFrames()
}

// flushFrames writes the pending frames in one call; what the link does not
// take goes through netstack. On error it returns the index of the first
// datagram not sent.
func (b *batch) flushFrames() (int, error) {
	s := b.s
	k := b.pending
	if k == 0 {
		return 0, nil
	}
	b.pending = 0
	frames := s.sc.frames[:k]
	n, err := s.link.WriteFrames(frames)
	clear(frames)
	add(&s.c.linkWrites, 1)
	add(&s.c.fast, uint64(n))
	if n >= k {
		return 0, nil
	}
	r := linkReason(err)
	for j := b.first + n; j < b.first+k; j++ {
		if err := s.fallback(r, b.payloads[j], b.dst(j)); err != nil {
			return j, err
		}
	}
	return 0, nil
}

func linkReason(err error) Reason {
	if errors.Is(err, link.ErrQueueFull) {
		return ReasonQueueFull
	}
	return ReasonLinkError
}

// fragmentOrFallback sends payload as fragments (prepare returned
// fragmentOK), or through netstack when the link does not take them all.
func (s *Sender) fragmentOrFallback(payload []byte, dst netip.AddrPort) error {
	ok, err := s.sendFragments(payload)
	if ok {
		add(&s.c.fast, 1)
		add(&s.c.fragmented, 1)
		return nil
	}
	return s.fallback(linkReason(err), payload, dst)
}

// fallback sends one datagram through netstack (prepare has asked the
// table to resolve dst already, so that the next one goes fast).
func (s *Sender) fallback(r Reason, payload []byte, dst netip.AddrPort) error {
	add(&s.c.fallbacks[r], 1)
	if err := s.fb.SendViaNetstack(payload, dst); err != nil {
		add(&s.c.fallbackErrors, 1)
		return err
	}
	return nil
}
