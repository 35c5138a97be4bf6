//go:build !race

package relaxed

import "sync/atomic"

// StoreRelease stores v in w with release order: stores before it are
// visible to whoever loads v from w. See the package documentation.
//
//go:noescape
func StoreRelease(w *atomic.Uint64, v uint64)
