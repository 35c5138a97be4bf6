//go:build !amd64 || race

package relaxed

import "sync/atomic"

// StoreRelease stores v in w with (at least) release order. See the package documentation.
func StoreRelease(w *atomic.Uint64, v uint64) { w.Store(v) }
