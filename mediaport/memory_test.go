package mediaport_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// openIdlePorts opens every port of m's range, as serve --reflect does
// (OpenFunc) or as a reader does (Open), and returns the heap each costs
// and how long closing the manager, which unregisters them all, takes.
func openIdlePorts(tb testing.TB, st *stack.Stack, opts mediaport.Options, buffered bool) (perPort float64, closeTime time.Duration) {
	tb.Helper()
	m, err := mediaport.NewManager(st, opts)
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	before := heapInUse()
	n := int(opts.PortMax) - int(opts.PortMin) + 1
	ports := make([]*mediaport.Port, 0, n)
	for port := int(opts.PortMin); port <= int(opts.PortMax); port++ {
		var p *mediaport.Port
		if buffered {
			p, err = m.Open(uint16(port))
		} else {
			p, err = m.OpenFunc(uint16(port), func(*mediaport.Port, *fastfilter.Datagram) {})
		}
		if err != nil {
			tb.Fatal(err)
		}
		ports = append(ports, p)
	}
	perPort = float64(heapInUse()-before) / float64(n)
	runtime.KeepAlive(ports)
	start := time.Now()
	m.Close()
	return perPort, time.Since(start)
}

// BenchmarkIdlePorts opens the full unprivileged port range (64512 ports,
// as serve --rtp-ports 1024-65535) and reports the heap each idle port
// costs and how long unregistering them all (Manager.Close) takes.
func BenchmarkIdlePorts(b *testing.B) {
	for _, c := range []struct {
		name     string
		buffered bool
	}{{"func", false}, {"ring", true}} {
		b.Run(c.name, func(b *testing.B) {
			lan := simlan.New(b, simlan.Options{Seed: 1}, simlan.HostOptions{N: hostA})
			opts := mediaport.Options{PortMin: 1024, PortMax: 65535}
			var per float64
			var closing time.Duration
			for range b.N {
				per, closing = openIdlePorts(b, lan.Hosts[0].Stack, opts, c.buffered)
			}
			b.ReportMetric(per, "bytes/port")
			b.ReportMetric(float64(closing.Milliseconds()), "close-ms")
		})
	}
}

// TestIdlePortMemory: an idle port with a receive function (a relay's, the
// reflector's) costs at most 1 KB: no netstack endpoint, no buffer, no send
// scratch until it is used.
func TestIdlePortMemory(t *testing.T) {
	lan := simlan.New(t, simlan.Options{Seed: 1}, simlan.HostOptions{N: hostA})
	per, _ := openIdlePorts(t, lan.Hosts[0].Stack, mediaport.Options{PortMin: 20000, PortMax: 24095}, false)
	t.Logf("%.0f bytes per idle port", per)
	if per > 1024 {
		t.Errorf("an idle port costs %.0f bytes, want at most 1024", per)
	}
}
