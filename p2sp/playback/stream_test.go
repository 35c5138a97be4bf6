package playback

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/mediastack/mediastack/p2sp/media/mediatest"
)

// downloading is a file being downloaded: ReadAt waits until the bytes
// asked for have arrived.
type downloading struct {
	mu    sync.Mutex
	cond  *sync.Cond
	data  []byte
	avail int
}

func newDownloading(data []byte) *downloading {
	d := &downloading{data: data}
	d.cond = sync.NewCond(&d.mu)
	return d
}

func (d *downloading) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= int64(len(d.data)) {
		return 0, io.EOF
	}
	end := min(int(off)+len(p), len(d.data))
	for d.avail < end {
		d.cond.Wait()
	}
	n := copy(p, d.data[off:end])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *downloading) arrive(n int) {
	d.mu.Lock()
	d.avail = min(d.avail+n, len(d.data))
	d.mu.Unlock()
	d.cond.Broadcast()
}

// TestPlayWhileDownloading: packets leave while the file's second half has
// not arrived yet, and the whole file follows once it does.
func TestPlayWhileDownloading(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    []byte
		packets int
	}{
		{"wav", mediatest.MuLawWAV(200 * time.Millisecond), 10},
		{"ogg", mediatest.OggOpus(30, 3), 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, rx := udpPair(t)
			file := newDownloading(tc.file)
			file.arrive(len(tc.file) / 2)
			type result struct {
				st  Stats
				err error
			}
			done := make(chan result, 1)
			go func() {
				st, err := SendRTPReader(context.Background(), file, int64(len(tc.file)), opts(tx, rx, newFakeClock()))
				done <- result{st, err}
			}()
			first := receive(t, rx, 1) // before the rest arrives
			file.arrive(len(tc.file))
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("SendRTPReader did not end")
			}
			if r.err != nil || r.st.Packets != tc.packets {
				t.Fatalf("stats %+v, %v; want %d packets", r.st, r.err, tc.packets)
			}
			rest := receive(t, rx, tc.packets-1)
			if first[0].SequenceNumber != 65530 || rest[len(rest)-1].SequenceNumber != 65530+uint16(tc.packets-1) {
				t.Errorf("sequence %d..%d", first[0].SequenceNumber, rest[len(rest)-1].SequenceNumber)
			}
		})
	}
}
