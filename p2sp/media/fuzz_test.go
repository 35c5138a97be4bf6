package media_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/mediastack/mediastack/p2sp/media"
	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

func seeds() [][]byte {
	return [][]byte{
		mediatest.PCMWAV(8000, 1, 20*time.Millisecond),
		mediatest.MuLawWAV(10 * time.Millisecond),
		mediatest.OggOpus(3, 2),
		mediatest.MP4("vide", time.Second, 2, false),
		mediatest.MP4("soun", time.Second, 1, true),
	}
}

// FuzzProbe: any input gives an Info or an error, never a panic or a hang.
func FuzzProbe(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := media.ProbeReader(bytes.NewReader(b), int64(len(b)))
		if err == nil && info.Type == "" {
			t.Fatal("no error and no type")
		}
		if info.Duration < 0 {
			t.Fatalf("negative duration %v", info.Duration)
		}
	})
}

// FuzzOggPackets: the packet reader ends with io.EOF or an error.
func FuzzOggPackets(f *testing.F) {
	f.Add(mediatest.OggOpus(5, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := media.NewOggReader(bytes.NewReader(b), int64(len(b)))
		for i := 0; ; i++ {
			p, err := r.NextPacket()
			if err != nil {
				if err != io.EOF && p.Data != nil {
					t.Fatal("data with an error")
				}
				return
			}
			if i > len(b) {
				t.Fatal("more packets than bytes")
			}
		}
	})
}
