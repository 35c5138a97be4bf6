package sim_test

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/simapp"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"
)

type pair struct {
	clock   *sim.Clock
	network *sim.Network
	a, b    *stack.Stack
	trace   bytes.Buffer
}

func newPair(t testing.TB, seed uint64, im sim.Impairments) *pair {
	t.Helper()
	p := &pair{}
	lan := simlan.New(t, simlan.Options{Seed: seed, Impairments: im, Trace: &p.trace},
		simlan.HostOptions{N: 1, Seed: int64(seed)}, simlan.HostOptions{N: 2, Seed: int64(seed)})
	p.clock, p.network = lan.Clock, lan.Network
	p.a, p.b = lan.Hosts[0].Stack, lan.Hosts[1].Stack
	return p
}

// transfer runs a TCP transfer of size bytes from a to b and returns the
// capture's hash.
func transfer(t *testing.T, seed uint64, size int, im sim.Impairments) [32]byte {
	t.Helper()
	p := newPair(t, seed, im)
	tr, err := simapp.NewTCPTransfer(p.a, p.b, netip.MustParseAddrPort("198.51.100.2:5001"), size, seed)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const tick = time.Millisecond
	limit := 10 * time.Minute
	for !tr.Done() && tr.Err == nil && p.clock.Elapsed() < limit {
		tr.Step()
		p.clock.Settle()
		p.network.Run(tick)
	}
	if err := tr.Verify(); err != nil {
		t.Fatalf("seed %d: %v (simulated %v)", seed, err, p.clock.Elapsed())
	}
	st := tr.Stats()
	t.Logf("seed %d: %d bytes in %v simulated (%.1f Mbit/s); frames sent %d, lost %d, reordered %d; retransmits %d",
		seed, size, p.clock.Elapsed(), float64(size)*8/p.clock.Elapsed().Seconds()/1e6,
		p.network.Stats.Sent.Load(), p.network.Stats.Lost.Load(), p.network.Stats.Reordered.Load(),
		st.SendErrors.Retransmits.Value())
	return sha256.Sum256(p.trace.Bytes())
}

var lossy = sim.Impairments{Delay: 20 * time.Millisecond, Loss: 0.01, Reorder: 0.01, ReorderDelay: 5 * time.Millisecond, Jitter: time.Millisecond}

func TestTCPTransferLossyIsExactAndReproducible(t *testing.T) {
	size := 10 << 20
	if testing.Short() {
		size = 1 << 20
	}
	h1 := transfer(t, 1, size, lossy)
	h2 := transfer(t, 1, size, lossy)
	if h1 != h2 {
		t.Fatalf("same seed gave different pcaps: %x vs %x", h1, h2)
	}
	h3 := transfer(t, 2, size, lossy)
	if h3 == h1 {
		t.Fatalf("different seeds gave the same pcap %x", h1)
	}
}
