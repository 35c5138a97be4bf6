package relay_test

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/relay"
)

type ended struct {
	id     string
	reason relay.EndReason
	at     time.Duration // simulated time since the relays were made
}

// TestTimeouts: on the simulated clock, with Timeout 10 s, SilentTimeout
// 30 s and FinalTimeout 60 s: a relay that never gets media ends after
// 10 s, one whose sides are on hold after 30 s, one with media 10 s after
// the media stops, one with media all along after 60 s. Each is deleted
// (its ports free), passed to OnEnd and logged with its counters.
func TestTimeouts(t *testing.T) {
	l := newLAN(t)
	var logs bytes.Buffer
	var got []ended
	start := l.Clock.Elapsed()
	s, err := relay.New(relay.Options{
		Manager: l.r, Timeout: 10 * time.Second, SilentTimeout: 30 * time.Second, FinalTimeout: 60 * time.Second,
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
		OnEnd: func(info relay.Info, reason relay.EndReason) {
			got = append(got, ended{info.ID, reason, l.Clock.Elapsed() - start})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	mk := func(label string) *relay.Relay {
		r, err := s.Create(relay.Spec{Label: label, Peers: [2]netip.AddrPort{caller, callee}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mk("silent")
	hold := mk("on hold")
	stops := mk("media stops")
	flows := mk("media flows")
	for i := range 2 {
		if err := hold.SetSilent(i, true); err != nil {
			t.Fatal(err)
		}
	}
	t1 := simlan.Open(t, l.t[0], caller.Port())
	dst := func(r *relay.Relay) netip.AddrPort { return netip.AddrPortFrom(portA.Addr(), r.Info().Ports[0]) }
	stopsAt, flowsTo := dst(stops), dst(flows)
	// Media every 2 s: to "media stops" for 20 s, to "media flows" for 70 s.
	for i := range 35 {
		if i < 10 {
			send(t, t1, stopsAt, "m")
		}
		send(t, t1, flowsTo, "m")
		l.Run(2 * time.Second)
	}
	want := []ended{
		{"1", relay.EndTimeout, 10 * time.Second},       // made at 0 s
		{"3", relay.EndTimeout, 29 * time.Second},       // last media at 18 s + 1 ms; checked on whole seconds
		{"2", relay.EndSilentTimeout, 30 * time.Second}, // on hold
		{"4", relay.EndFinalTimeout, 60 * time.Second},  // media all along
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(ended{})); diff != "" {
		t.Errorf("ended relays (-want +got):\n%s", diff)
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("%d relays left", n)
	}
	if st := s.Stats(); st.Ended[relay.EndTimeout] != 2 || st.Ended[relay.EndSilentTimeout] != 1 || st.Ended[relay.EndFinalTimeout] != 1 {
		t.Errorf("ended counts %v", st.Ended)
	}
	// The ports are free again.
	if _, err := s.Create(relay.Spec{Ports: [2]uint16{20000, 20002}}); err != nil {
		t.Errorf("Create on a timed-out relay's ports: %v", err)
	}
	for _, line := range []string{
		`msg="relay timed out" id=1 label=silent reason=timeout`,
		`msg="relay timed out" id=2 label="on hold" reason=silent_timeout`,
		`msg="relay timed out" id=4 label="media flows" reason=final_timeout ports="[20012 20014]" a.packets=30`,
		`msg="peer learned" id=3 label="media stops" side=a stream=rtp from=198.51.100.1:20010 to=198.51.100.1:20010 how=expected`,
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no log line with %s in:\n%s", line, logs.String())
		}
	}
}
