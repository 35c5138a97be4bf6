package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Loop is a Bench over a packet loop: Run moves n packets through the path,
// one after the other, on the calling goroutine. A round runs enough
// packets to last about Config.RoundTime and reports the time and the heap
// allocations per packet (runtime.MemStats.Mallocs, as
// testing.AllocsPerRun counts them, in a pass of its own).
type Loop struct {
	// Run moves n packets through the path and checks they arrived.
	Run func(n int) error
	// Closer releases what the path holds (may be nil).
	Closer func() error

	roundTime time.Duration
	n         int // packets per round, from the first round's calibration
}

// NewLoop returns a Loop whose rounds last about roundTime.
func NewLoop(roundTime time.Duration, run func(n int) error, closer func() error) *Loop {
	return &Loop{Run: run, Closer: closer, roundTime: roundTime}
}

// warmup is how many packets a loop runs before it measures anything:
// first-use allocations (pools, route caches, templates) are not per packet.
const warmup = 256

// calibrate warms the path up and sizes a round.
func (l *Loop) calibrate() error {
	if err := l.Run(warmup); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	n := 64
	for {
		start := time.Now()
		if err := l.Run(n); err != nil {
			return err
		}
		el := time.Since(start)
		if el >= l.roundTime/8 || n >= 1<<26 {
			per := float64(el) / float64(n)
			l.n = max(int(float64(l.roundTime)/per), 16)
			return nil
		}
		n *= 4
	}
}

// Round implements Bench: a timed pass of the calibrated packet count,
// then an allocation pass.
func (l *Loop) Round(ctx context.Context) (Result, error) {
	if l.n == 0 {
		if err := l.calibrate(); err != nil {
			return Result{}, err
		}
	}
	// As testing.B does before each run: garbage another path's round
	// left is collected now, not on this round's time.
	runtime.GC()
	start := time.Now()
	err := l.Run(l.n)
	el := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	allocs, err := l.allocsPerPacket(max(l.n/8, 100))
	if err != nil {
		return Result{}, err
	}
	ns := float64(el.Nanoseconds()) / float64(l.n)
	return Result{NsPerPacket: ns, PacketsPerSecond: 1e9 / ns, AllocsPerPacket: allocs}, nil
}

// allocsPerPacket counts the heap allocations of n packets as
// testing.AllocsPerRun does: on one P (GOMAXPROCS=1), after a warm-up, from
// runtime.MemStats.Mallocs. On one P the goroutine cannot move to another
// P between datagrams, so a sync.Pool that a GC emptied is refilled by the
// warm-up and not again: what is left is what the path allocates per packet.
func (l *Loop) allocsPerPacket(n int) (float64, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if err := l.Run(16); err != nil {
		return 0, err
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := l.Run(n)
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), err
}

// Close implements Bench.
func (l *Loop) Close() error {
	if l.Closer == nil {
		return nil
	}
	return l.Closer()
}
