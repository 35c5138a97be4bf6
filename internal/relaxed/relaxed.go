// Package relaxed is a release-ordered store to a sync/atomic word, for
// hot paths that hand data over with a single writer.
//
// sync/atomic's Store is sequentially consistent, which on amd64 is an XCHG:
// a locked instruction that waits until every store before it has reached
// the cache. After a 1200-byte copy that is about 7 ns per datagram
// (fastfilter's BenchmarkReceive profile), and a single-writer counter pays
// it on every update. Handing data over needs only release order, which a
// plain store has on amd64 (stores are not reordered with older stores), as
// the Go runtime's own StoreRel64 does. StoreRelease is that store, in
// assembly so that the compiler can neither reorder nor elide it; race
// builds and other architectures use atomic Store, so the race detector
// still sees every hand-over. Readers use the word's atomic Load.
//
// Use it where one goroutine at a time writes the word (a ring slot's
// sequence number handed between owners, a counter with a single writer),
// never for a read-modify-write that others race with. It is not a fence: a
// load after it may be served before the store is visible to others (x86
// lets loads pass older stores), so "store, then look for sleepers" against
// "announce sleeping, then look at the word" can miss both ways. A
// hand-over that must also wake a sleeper needs a locked instruction on
// each side of that handshake (fastfilter's Ring has one in its tail
// compare-and-swap; see Ring.wait).
package relaxed

import "sync/atomic"

// AddSingleWriter adds n to a counter that only the calling goroutine
// writes: a load and a release store, no locked instruction on amd64.
// Readers see the counter with its atomic Load.
func AddSingleWriter(w *atomic.Uint64, n uint64) { StoreRelease(w, w.Load()+n) }
