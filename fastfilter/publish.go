package fastfilter

// The ring hands a slot over by storing its sequence number after the
// payload copy. sync/atomic's Store is sequentially consistent, which on
// amd64 is an XCHG: a locked instruction that waits until every store
// before it (the 1200 bytes just copied) has reached the cache, about 7 ns
// per datagram at that size in BenchmarkReceive's profile. Handing over
// needs only release order, which a plain store has on amd64 (stores are
// not reordered with older stores), as the Go runtime's own StoreRel64
// does. storeRelease is that store, in assembly so that the compiler can
// neither reorder nor elide it; race builds and other architectures use
// atomic Store, so the race detector still sees every hand-over.
