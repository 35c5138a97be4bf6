package sim

import (
	"context"
	"time"
)

// DefaultPaceTick is how often Pace moves the clock when its tick is 0.
const DefaultPaceTick = time.Millisecond

// Pace drives the clock in step with real time until ctx is done: every
// tick it advances the clock to the real time elapsed since Pace began,
// running the timers that fall due on the way. It is for code that runs on
// wall-clock timers of its own next to the simulated network (a library's
// handshake timeouts and rate limiters, anacrolix/torrent's among them): a
// simulated second then lasts about a real second, and link bandwidths and
// delays mean what they say on the wall clock too.
//
// When the simulation needs more CPU than real time allows, the clock falls
// behind and catches up in one larger step at the next tick; it never runs
// ahead of real time. A paced run is not reproducible: which frame meets
// which wall-clock timeout depends on the machine's speed. Assert
// invariants (bytes arrived, a file intact), not exact traces.
//
// Pace must be the only caller of Advance while it runs. It returns ctx's
// error.
func (c *Clock) Pace(ctx context.Context, tick time.Duration) error {
	if tick <= 0 {
		tick = DefaultPaceTick
	}
	start := time.Now()
	base := c.Elapsed()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if behind := base + time.Since(start) - c.Elapsed(); behind > 0 {
			c.Advance(behind)
		}
	}
}

// Pace drives the network's clock in step with real time until ctx is done
// (Clock.Pace).
func (n *Network) Pace(ctx context.Context, tick time.Duration) error {
	return n.clock.Pace(ctx, tick)
}
