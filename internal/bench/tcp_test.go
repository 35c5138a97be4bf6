package bench

import (
	"context"
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestTCPBenchesTransferIntact runs one small round of every TCP transfer
// bench: the bytes arrive intact (the receivers check them) and the figures
// are filled in. Not a measurement.
func TestTCPBenchesTransferIntact(t *testing.T) {
	const size = 8 << 20
	open := map[string]func(Path) (Bench, error){
		"sim": func(p Path) (Bench, error) { return newSimTCPBench(p, size) },
	}
	if !testing.Short() {
		netnstest.Require(t)
		netnstest.RequireTUN(t)
		for _, kind := range []string{"tap", "raw"} {
			open[kind] = func(p Path) (Bench, error) { return newKernelTCPBench(kind, p, size) }
		}
	}
	paths := map[string][]Path{"sim": {PathSoft, PathOff}, "tap": {PathVnet, PathOff}, "raw": {PathSoft, PathOff}}
	for kind, o := range open {
		for _, p := range paths[kind] {
			t.Run(kind+"/"+string(p), func(t *testing.T) {
				b, err := o(p)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				r, err := b.Round(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if r.MBPerSecond <= 0 || r.CPUMsPerMB < 0 {
					t.Errorf("figures: %+v", r)
				}
			})
		}
	}
}
