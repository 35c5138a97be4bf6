// Package linkstats reads a network interface's own counters from the
// kernel (struct rtnl_link_stats64, as `ip -s link` shows them), for the
// links (link/tap, link/raw) to export the drops the kernel made on their
// way: a TAP's queue that overflowed, a veth's backlog.
package linkstats

import "errors"

// Counters are the interface counters the links export. Directions are the
// interface's: on a TAP, "tx" is toward the program that reads it.
type Counters struct {
	RxPackets, TxPackets uint64
	// RxDropped counts frames the interface received that the kernel
	// dropped (on a TAP: frames the program wrote).
	RxDropped uint64
	// TxDropped counts frames the kernel dropped on their way out of the
	// interface (on a TAP: toward the program, mostly because the TAP's
	// queue was full: the program did not read fast enough).
	TxDropped uint64
}

// ErrNoCounters reports an answer without counters.
var ErrNoCounters = errors.New("linkstats: the kernel reported no counters for the interface")
