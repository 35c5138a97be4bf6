package udpfast

import (
	"encoding/binary"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// idBuckets is how many counters an IDs has: destinations that share a
// bucket share a counter, which spreads their IDs but never repeats one
// sooner than a counter of their own would.
const idBuckets = 2048

// IDs hands out IPv4 identifications for datagrams that may be fragmented
// (Options.AllowFragmentation): a counter per (source, destination,
// protocol), as RFC 6864 section 4.3 asks, so that the IDs of datagrams
// between two hosts do not repeat within the 65536 that precede them. The
// counters are a hashed array, each with a random start, as Linux's
// ip_idents (RFC 7739 section 5.3: not predictable from one flow to
// another, no state per destination). Share one IDs among every sender of
// a stack: two senders to the same peer (an RTP/RTCP pair) then draw from
// the same counter and never emit the same ID. Safe for concurrent use.
type IDs struct {
	key      [2]uint64
	counters [idBuckets]atomic.Uint32
}

// NewIDs returns counters whose starts and hash key derive from seed: the
// same seed gives the same IDs, for deterministic simulations. Seed it from
// a random source (mediaport seeds it from the stack's seed).
func NewIDs(seed uint64) *IDs {
	ids := &IDs{}
	x := seed
	next := func() uint64 { // splitmix64
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		return z ^ z>>31
	}
	ids.key = [2]uint64{next(), next()}
	for i := range ids.counters {
		ids.counters[i].Store(uint32(next()))
	}
	return ids
}

// newSenderIDs returns the counters of a sender with no shared IDs,
// seeded from its stack's seed and its port.
func newSenderIDs(stackSeed uint32, port uint16) *IDs {
	return NewIDs(uint64(stackSeed)<<16 | uint64(port))
}

// counter returns the counter of (src, dst, UDP). Senders look it up when
// their destination changes, not per datagram.
func (ids *IDs) counter(src, dst tcpip.Address) *atomic.Uint32 {
	h := ids.key[0]
	for _, a := range [2]tcpip.Address{src, dst} {
		var b [16]byte
		copy(b[:], a.AsSlice())
		h = mix(h ^ binary.LittleEndian.Uint64(b[:8]))
		h = mix(h ^ binary.LittleEndian.Uint64(b[8:]))
	}
	h = mix(h ^ ids.key[1] ^ 17) // 17: UDP
	return &ids.counters[h%idBuckets]
}

// mix is MurmurHash3's 64-bit finaliser.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

// take reserves n consecutive IDs from c and returns the first.
func take(c *atomic.Uint32, n int) uint16 {
	return uint16(c.Add(uint32(n)) - uint32(n))
}
