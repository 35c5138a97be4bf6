package sim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mediastack/mediastack/link/sim"
)

// TestPaceFollowsRealTime checks that a paced clock runs timers when their
// real time comes, neither early nor much later, and stops with its context.
func TestPaceFollowsRealTime(t *testing.T) {
	clock := sim.NewClock()
	fired := make(chan time.Duration, 1)
	const due = 30 * time.Millisecond
	clock.AfterFunc(due, func() { fired <- clock.Elapsed() })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- clock.Pace(ctx, 0) }()

	select {
	case at := <-fired:
		real := time.Since(start)
		if at != due {
			t.Errorf("timer ran at simulated %v, want %v", at, due)
		}
		if real < due {
			t.Errorf("timer due at %v ran after %v of real time: ahead of the wall clock", due, real)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timer did not run within 10s of real time")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Pace returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pace did not return after its context was cancelled")
	}
	if el, real := clock.Elapsed(), time.Since(start); el > real {
		t.Errorf("clock at %v after %v of real time: ran ahead", el, real)
	}
}

// TestPaceKeepsGoingWhenSlow checks that a clock whose callbacks take
// longer than real time allows still moves, in larger steps, instead of
// stalling.
func TestPaceKeepsGoingWhenSlow(t *testing.T) {
	clock := sim.NewClock()
	var tick func()
	tick = func() {
		time.Sleep(2 * time.Millisecond) // a slow event: 2ms of work per simulated 1ms
		clock.AfterFunc(time.Millisecond, tick)
	}
	clock.AfterFunc(0, tick)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = clock.Pace(ctx, 0)
	// Each Advance runs ~the whole lag's worth of timers, at 2ms each: the
	// clock lags at most about a tick plus one catch-up step behind.
	if el, real := clock.Elapsed(), time.Since(start); el < real/4 {
		t.Errorf("clock at %v after %v of real time: fell behind for good", el, real)
	}
}
