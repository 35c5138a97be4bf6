package ethlink_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/ethlink"
	"github.com/mediastack/mediastack/link/pcap"
	"github.com/mediastack/mediastack/link/vnet"
)

// trainHeader is a stand-in for the Ethernet, IPv4 and UDP headers of a
// train (the endpoint only measures it).
var trainHeader = make([]byte, 14+20+8)

// TestWriteUDPSegments: a train goes to the device as one packet behind a
// GSO_UDP_L4 header that tells the kernel where the UDP header is and how
// long each datagram is, the payloads as pieces after the headers.
func TestWriteUDPSegments(t *testing.T) {
	dev := &loopDevice{out: make(chan []byte, 4)}
	ep := newEndpoint(t, ethlink.Options{Device: dev, UDPSegmentation: true})
	if got := ep.MaxUDPSegments(); got != ethlink.MaxUDPSegmentsPerWrite {
		t.Fatalf("MaxUDPSegments() = %d, want %d", got, ethlink.MaxUDPSegmentsPerWrite)
	}
	payloads := [][]byte{bytes.Repeat([]byte{1}, 172), bytes.Repeat([]byte{2}, 172), bytes.Repeat([]byte{3}, 40)}
	if err := ep.WriteUDPSegments(trainHeader, payloads); err != nil {
		t.Fatal(err)
	}
	want := vnet.Hdr{
		Flags:      vnet.FlagNeedsCsum,
		GSOType:    vnet.GSOUDPL4,
		HdrLen:     42,
		GSOSize:    172,
		CsumStart:  34,
		CsumOffset: 6,
	}
	dev.mu.Lock()
	recs := dev.recs
	dev.mu.Unlock()
	if len(recs) != 1 {
		t.Fatalf("%d packets written, want 1", len(recs))
	}
	if diff := cmp.Diff(want, recs[0].hdr); diff != "" {
		t.Errorf("virtio-net header (-want +got):\n%s", diff)
	}
	if wantLen := 42 + 172 + 172 + 40; len(recs[0].frame) != wantLen {
		t.Errorf("train of %d bytes, want %d", len(recs[0].frame), wantLen)
	}
	if got := ep.Stats.TxFrames.Load(); got != 3 {
		t.Errorf("TxFrames = %d, want 3 (one per datagram)", got)
	}
	if got := ep.Stats.TxUDPTrains.Load(); got != 1 {
		t.Errorf("TxUDPTrains = %d, want 1", got)
	}
}

// TestWriteUDPSegmentsRefuses what the kernel would refuse or cannot be a
// train, and an endpoint that cannot segment says so with MaxUDPSegments 0.
func TestWriteUDPSegmentsRefuses(t *testing.T) {
	p := make([]byte, 100)
	tests := []struct {
		name     string
		payloads [][]byte
		hdr      []byte
	}{
		{"one datagram", [][]byte{p}, trainHeader},
		{"too many", func() [][]byte {
			var ps [][]byte
			for range ethlink.MaxUDPSegmentsPerWrite + 1 {
				ps = append(ps, p)
			}
			return ps
		}(), trainHeader},
		{"last longer", [][]byte{p, append(p, 0)}, trainHeader},
		{"empty", [][]byte{{}, {}}, trainHeader},
		{"short header", [][]byte{p, p}, trainHeader[:30]},
	}
	ep := newEndpoint(t, ethlink.Options{Device: &loopDevice{out: make(chan []byte, 4)}, UDPSegmentation: true})
	for _, tc := range tests {
		if err := ep.WriteUDPSegments(tc.hdr, tc.payloads); err == nil {
			t.Errorf("%s: WriteUDPSegments succeeded", tc.name)
		}
	}

	plain := newEndpoint(t, ethlink.Options{})
	if got := plain.MaxUDPSegments(); got != 0 {
		t.Errorf("without UDPSegmentation: MaxUDPSegments() = %d, want 0", got)
	}
	if err := plain.WriteUDPSegments(trainHeader, [][]byte{p, p}); err == nil {
		t.Error("without UDPSegmentation: WriteUDPSegments succeeded")
	}
	w, err := pcap.NewWriter(new(bytes.Buffer), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	captured := newEndpoint(t, ethlink.Options{Device: &loopDevice{out: make(chan []byte, 4)}, UDPSegmentation: true, Capture: w})
	if got := captured.MaxUDPSegments(); got != 0 {
		t.Errorf("with a capture: MaxUDPSegments() = %d, want 0 (a capture records frames)", got)
	}
	if _, err := ethlink.New(ethlink.Options{Device: newDevice(), MAC: ourMAC, MTU: 1500, UDPSegmentation: true}); err == nil {
		t.Error("New with UDPSegmentation over a device without virtio-net headers succeeded")
	}
	ep.Close()
	if err := ep.WriteUDPSegments(trainHeader, [][]byte{p, p}); !errors.Is(err, link.ErrClosed) {
		t.Errorf("after Close: %v, want link.ErrClosed", err)
	}
}

// refusingDevice refuses every virtio-net packet as invalid, as a kernel
// older than 6.2 refuses GSO_UDP_L4.
type refusingDevice struct{ countingDevice }

func (d *refusingDevice) WriteVnet([]vnet.Packet) (int, error) {
	return 0, syscall.EINVAL
}

// TestUDPSegmentsOffAfterKernelRefuses: a train the kernel refuses as invalid
// turns trains off, so an older kernel costs one refused train, not all.
func TestUDPSegmentsOffAfterKernelRefuses(t *testing.T) {
	ep := newEndpoint(t, ethlink.Options{Device: &refusingDevice{}, UDPSegmentation: true})
	p := make([]byte, 100)
	if err := ep.WriteUDPSegments(trainHeader, [][]byte{p, p}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("WriteUDPSegments = %v, want EINVAL", err)
	}
	if got := ep.MaxUDPSegments(); got != 0 {
		t.Errorf("after a refused train, MaxUDPSegments() = %d, want 0", got)
	}
	if got := ep.Stats.TxUDPTrainsRefused.Load(); got != 1 {
		t.Errorf("TxUDPTrainsRefused = %d, want 1", got)
	}
}
