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
// testing.AllocsPerRun counts them).
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

// Round implements Bench.
func (l *Loop) Round(ctx context.Context) (Result, error) {
	if l.n == 0 {
		if err := l.calibrate(); err != nil {
			return Result{}, err
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	err := l.Run(l.n)
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		return Result{}, err
	}
	ns := float64(el.Nanoseconds()) / float64(l.n)
	return Result{
		NsPerPacket:      ns,
		PacketsPerSecond: 1e9 / ns,
		AllocsPerPacket:  float64(after.Mallocs-before.Mallocs) / float64(l.n),
	}, nil
}

// Close implements Bench.
func (l *Loop) Close() error {
	if l.Closer == nil {
		return nil
	}
	return l.Closer()
}
