package simapp_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/simapp"
)

func runDemo(t *testing.T, seed uint64) (out, capture string) {
	t.Helper()
	var o, c bytes.Buffer
	d := simapp.Demo{Duration: 2 * time.Second, Seed: seed, Loss: 0.01, Delay: 5 * time.Millisecond,
		TCPBytes: 256 << 10, Streams: 2, Capture: &c}
	if err := d.Run(&o); err != nil {
		t.Fatalf("Demo.Run: %v\n%s", err, o.String())
	}
	return o.String(), c.String()
}

// TestDemoIsDeterministic: the same seed gives the same lines and the same
// capture, byte for byte; another seed another run.
func TestDemoIsDeterministic(t *testing.T) {
	out1, pcap1 := runDemo(t, 3)
	out2, pcap2 := runDemo(t, 3)
	if diff := cmp.Diff(out1, out2); diff != "" {
		t.Errorf("same seed, different output (-want +got):\n%s", diff)
	}
	if pcap1 != pcap2 {
		t.Errorf("same seed, different capture (%d and %d bytes)", len(pcap1), len(pcap2))
	}
	for _, want := range []string{"tcp payload verified", "rtp: 2 streams", "fast path:"} {
		if !strings.Contains(out1, want) {
			t.Errorf("output lacks %q:\n%s", want, out1)
		}
	}
	if _, pcap3 := runDemo(t, 4); pcap3 == pcap1 {
		t.Error("seeds 3 and 4 captured the same frames")
	}
}
