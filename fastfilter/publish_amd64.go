//go:build !race

package fastfilter

import "sync/atomic"

// storeRelease stores v in w with release order: stores before it are
// visible to whoever loads v from w. See publish.go.
//
//go:noescape
func storeRelease(w *atomic.Uint64, v uint64)
