//go:build !amd64 || race

package fastfilter

import "sync/atomic"

// storeRelease stores v in w with (at least) release order. See publish.go.
func storeRelease(w *atomic.Uint64, v uint64) { w.Store(v) }
