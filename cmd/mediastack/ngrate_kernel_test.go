package main

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/bencode"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/internal/rtpengine"
	"github.com/mediastack/mediastack/internal/sipua"
)

// dialNG opens an ng client socket in the namespace: a request at a time,
// each with a cookie of its own, as one Kamailio worker does.
func dialNG(t *testing.T, ns *netnstest.Namespace, ng netip.AddrPort, prefix string) *rtpengine.Conn {
	t.Helper()
	var c *rtpengine.Conn
	if err := ns.Enter(func() error {
		var err error
		c, err = rtpengine.Dial(ng, prefix)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(netnstest.StateTimeout) // a hang guard
	t.Cleanup(func() { c.Close() })
	return c
}

// ngCallRate runs whole calls (offer, answer, delete, as Kamailio sends
// them) through the relay's ng port from workers clients in parallel for
// duration, and returns how many calls completed and the first error.
func ngCallRate(t *testing.T, ns *netnstest.Namespace, ng netip.AddrPort, workers int, duration time.Duration) (int, error) {
	conns := make([]*rtpengine.Conn, workers)
	for i := range conns {
		conns[i] = dialNG(t, ns, ng, fmt.Sprintf("1_%d", i))
	}
	offer, answer := sipua.AudioSDP(callerMedia, 1), sipua.AudioSDP(calleeMedia, 2)
	flags := bencode.List{"origin", "session-connection"}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		calls    int
		firstErr error
	)
	deadline := time.Now().Add(duration)
	for w, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				callID := fmt.Sprintf("rate-%d-%d", w, i)
				steps := []bencode.Dict{
					{"command": "offer", "call-id": callID, "from-tag": "a", "sdp": string(offer), "replace": flags, "ICE": "remove",
						"received-from": bencode.List{"IP4", phoneV4.String()}, "supports": bencode.List{"load limit"}},
					{"command": "answer", "call-id": callID, "from-tag": "a", "to-tag": "b", "sdp": string(answer), "replace": flags, "ICE": "remove",
						"received-from": bencode.List{"IP4", phoneV4.String()}, "supports": bencode.List{"load limit"}},
					{"command": "delete", "call-id": callID, "from-tag": "a", "to-tag": "b", "supports": bencode.List{"load limit"}},
				}
				for _, req := range steps {
					if d, err := c.Do(req); err != nil || (req["command"] == "delete" && d["warning"] != nil) {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("call %s: %v (reply %v)", callID, err, d)
						}
						mu.Unlock()
						return
					}
				}
				mu.Lock()
				calls++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return calls, firstErr
}

// callRateTest measures the calls per second the relay's ng port sustains
// and checks that every call was set up and torn down cleanly, and that
// none is left.
func callRateTest(t *testing.T, ns *netnstest.Namespace, relay relayTarget) {
	const workers, duration = 4, 3 * time.Second
	calls, err := ngCallRate(t, ns, relay.client.NG, workers, duration)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d calls (offer, answer, delete) in %v from %d clients in parallel: %.0f calls/s",
		relay.name, calls, duration, workers, float64(calls)/duration.Seconds())
	if calls == 0 {
		t.Fatal("no call completed")
	}
	c := dialNG(t, ns, relay.client.NG, "list")
	d, err := c.Do(bencode.Dict{"command": "list"})
	if l, ok := d["calls"].(bencode.List); err != nil || !ok || len(l) != 0 {
		t.Errorf("list after the calls: %v %v, want no call left", d, err)
	}
}

// TestNgCallRateRtpengine: the real rtpengine's ng call rate, the
// yardstick for TestNgCallRate.
func TestNgCallRateRtpengine(t *testing.T) {
	netnstest.RequireTools(t, "rtpengine", "rtpengine-ng-client")
	ns := netnstest.NewNamespace(t)
	callRateTest(t, ns, startRtpengine(t, ns, ngAddr, rtpengineV4))
}

// TestNgCallRate: the calls per second mediastack's ng port sustains, every
// call set up and torn down cleanly.
func TestNgCallRate(t *testing.T) {
	netnstest.RequireTools(t, "rtpengine-ng-client", "ping")
	ns := netnstest.NewNamespace(t)
	callRateTest(t, ns, startMediastack(t, ns, "msrate", ngAddr))
}
