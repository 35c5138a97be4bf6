package playback

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

// lanClock is the simulated LAN's clock: waiting runs the LAN.
type lanClock struct {
	lan *simlan.LAN
	now time.Time
}

func (c *lanClock) Now() time.Time { return c.now }

func (c *lanClock) SleepUntil(ctx context.Context, t time.Time) error {
	if d := t.Sub(c.now); d > 0 {
		c.lan.Run(d)
		c.now = t
	}
	return ctx.Err()
}

// TestFastPath: an Ogg Opus file leaves through a media port (mediastack's
// fast path) on a simulated LAN and arrives at the other host's port as
// numbered, timed RTP.
func TestFastPath(t *testing.T) {
	mo := &mediaport.Options{PortMin: 20000, PortMax: 20009}
	lan := simlan.New(t, simlan.Options{Seed: 1}, simlan.HostOptions{N: 1, Media: mo}, simlan.HostOptions{N: 2, Media: mo})
	tx, rx := simlan.Open(t, lan.Hosts[0].Media, 20000), simlan.Open(t, lan.Hosts[1].Media, 20002)
	lan.Run(time.Second)
	clock := &lanClock{lan: lan, now: time.Unix(1_700_000_000, 0)}
	o := RTPOptions{Sender: tx, Dest: netip.AddrPortFrom(frames.V4(2), 20002), Clock: clock, SSRC: 7, FirstSequence: 100, FirstTimestamp: 1000}
	st, err := SendRTP(context.Background(), writeFile(t, "a.ogg", mediatest.OggOpus(12, 5)), o)
	if err != nil {
		t.Fatal(err)
	}
	lan.Run(100 * time.Millisecond)
	got := simlan.Drain(t, rx)
	if st.Packets != 12 || len(got) != 12 {
		t.Fatalf("sent %d packets, received %d, want 12", st.Packets, len(got))
	}
	// The first packet may go through netstack while the next hop's MAC is
	// learnt; the rest take the fast path.
	if s := tx.Stats().Send; s.Fast < 11 {
		t.Errorf("send stats %v: want at least 11 of 12 on the fast path", s)
	}
	for i, d := range got {
		var p rtp.Packet
		if err := p.Unmarshal([]byte(d.Payload)); err != nil {
			t.Fatal(err)
		}
		if p.SequenceNumber != 100+uint16(i) || p.Timestamp != 1000+uint32(i)*960 || p.SSRC != 7 || p.PayloadType != 111 || string(p.Payload) != string(mediatest.OpusPacket(i)) {
			t.Errorf("packet %d: seq %d ts %d ssrc %d pt %d payload %x", i, p.SequenceNumber, p.Timestamp, p.SSRC, p.PayloadType, p.Payload)
		}
		if want := netip.AddrPortFrom(frames.V4(1), 20000).String(); d.From != want {
			t.Errorf("packet %d from %s, want %s", i, d.From, want)
		}
	}
}
