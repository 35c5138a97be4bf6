package relay

import (
	"log/slog"
	"strconv"
	"testing"

	"github.com/mediastack/mediastack/link/sim"
)

// BenchmarkCheck10k: the timer's check over 10,000 relays, none due: what
// a service pays once per earliest deadline, whatever its traffic.
func BenchmarkCheck10k(b *testing.B) {
	clock := sim.NewClock()
	s := &Service{
		opts:  Options{Timeout: DefaultTimeout, SilentTimeout: DefaultSilentTimeout},
		log:   slog.New(slog.DiscardHandler),
		clock: clock, relays: make(map[string]*Relay),
	}
	s.wallBase, s.monoBase = clock.Now(), clock.NowMonotonic()
	for i := range 10000 {
		r := &Relay{s: s, id: strconv.Itoa(i), created: s.now()}
		r.lastSignal.Store(r.created)
		s.relays[r.id] = r
	}
	b.ReportAllocs()
	for b.Loop() {
		s.check()
	}
	if len(s.relays) != 10000 {
		b.Fatalf("%d relays left", len(s.relays))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/relay")
	s.timer.Stop()
}
