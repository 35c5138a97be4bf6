package pcap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/link/sim"
)

func TestFormat(t *testing.T) {
	clock := sim.NewClock()
	var out bytes.Buffer
	w, err := pcap.NewWriter(&out, clock, 8)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(1500 * time.Millisecond)
	if err := w.WriteFrame([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()
	le := binary.LittleEndian
	got := []uint32{le.Uint32(b[0:]), uint32(le.Uint16(b[4:])), uint32(le.Uint16(b[6:])), le.Uint32(b[16:]), le.Uint32(b[20:])}
	if diff := cmp.Diff([]uint32{0xa1b2c3d4, 2, 4, 8, 1}, got); diff != "" {
		t.Errorf("file header: magic, version, snaplen, linktype (-want +got):\n%s", diff)
	}
	rec := b[24:]
	ts := sim.Epoch.Add(1500 * time.Millisecond)
	got = []uint32{le.Uint32(rec[0:]), le.Uint32(rec[4:]), le.Uint32(rec[8:]), le.Uint32(rec[12:])}
	if diff := cmp.Diff([]uint32{uint32(ts.Unix()), 500000, 8, 10}, got); diff != "" {
		t.Errorf("record header: seconds, microseconds, captured, original (-want +got):\n%s", diff)
	}
	if string(rec[16:]) != "01234567" {
		t.Errorf("record data %q, want the first 8 bytes", rec[16:])
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriteErrorSticks(t *testing.T) {
	w, err := pcap.NewWriter(&failingWriter{after: 1}, sim.NewClock(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := w.WriteFrame([]byte("frame")); err == nil || err.Error() != "disk full" {
			t.Errorf("write %d = %v, want the first error again", i, err)
		}
	}
}
