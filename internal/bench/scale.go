package bench

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/frames"
)

// scaleSize is the payload of the scaling sweep: one RTP packet.
const scaleSize = 172

// scalePeerAddrs is how many peer addresses the streams spread over (one
// /24 of on-link neighbours); streams on the same address differ by port.
const scalePeerAddrs = 200

// scalingSuite measures the fast reflector's per-packet cost with 1 to
// 10,000 concurrent streams: stream i arrives on local port basePort+i
// from its own peer address and port, and packets go round-robin over the
// streams, so every packet looks up another port in the filter's registry
// and the policy ARP table and uses another Sender's template. Both tables
// are arrays indexed by port offset, so the cost should stay flat; what
// grows is only the working set the caches hold.
func scalingSuite() Suite {
	return Suite{
		Name:  "scaling",
		Title: "Scaling: fast reflector, per packet, packets round-robin over N concurrent streams (distinct local ports and peers)",
		Workloads: func(cfg Config) ([]Workload, func() error, error) {
			var ws []Workload
			for _, n := range cfg.Streams {
				if n < 1 || n > 40000 {
					return nil, nil, fmt.Errorf("stream count %d out of range [1, 40000]", n)
				}
				ws = append(ws, Workload{
					Name:  ScaleWorkload(n),
					Paths: []Path{PathFast},
					Open: func(_ context.Context, _ Path) (Bench, error) {
						return openScale(cfg, n)
					},
				})
			}
			return ws, nil, nil
		},
		Columns: packetColumns,
	}
}

// ScaleWorkload names the scaling workload with n streams.
func ScaleWorkload(n int) string {
	return fmt.Sprintf("scale/reflect/v4/%d/streams=%d", scaleSize, n)
}

// ScaleStreams returns the stream count of a scaling workload's name.
func ScaleStreams(workload string) (int, bool) {
	_, n, ok := strings.Cut(workload, "/streams=")
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(n)
	return v, err == nil
}

// scalePeer is stream i's peer.
func scalePeer(i int) netip.AddrPort {
	return netip.AddrPortFrom(frames.V4(byte(10+i%scalePeerAddrs)), uint16(peerPort+i/scalePeerAddrs))
}

func openScale(cfg Config, streams int) (Bench, error) {
	var peers []netip.Addr
	for i := range min(streams, scalePeerAddrs) {
		peers = append(peers, scalePeer(i).Addr())
	}
	h, err := newHost(hostOptions{ports: streams, peers: peers, fast: true})
	if err != nil {
		return nil, err
	}
	r, err := newFastReflector(h.filter, h.table, h.link, basePort, uint16(basePort+streams-1), []netip.Addr{stackV4.Addr()})
	if err != nil {
		h.close()
		return nil, err
	}
	payload := frames.Pattern(scaleSize)
	streamFrames := make([][]byte, streams)
	for i := range streamFrames {
		streamFrames[i] = frames.UDP{Src: scalePeer(i), Dst: netip.AddrPortFrom(stackV4.Addr(), uint16(basePort+i)), Payload: payload, Flags: header.IPv4FlagDontFragment}.Build()
	}
	next := 0
	run := func(n int) error {
		before := h.written()
		for range n {
			h.link.DeliverFrame(streamFrames[next])
			if next++; next == streams {
				next = 0
			}
		}
		return h.expectWritten(before, n)
	}
	// Every stream's first datagram makes its policy ARP entry through
	// netstack: do that before anything is measured.
	if err := run(streams); err != nil {
		r.close()
		h.close()
		return nil, err
	}
	return NewLoop(cfg.RoundTime, run, func() error {
		_, fb := r.stats()
		err := r.close()
		if fb > uint64(streams) {
			err = fmt.Errorf("%d datagrams went through netstack, want one per stream (%d)", fb, streams)
		}
		if cerr := h.close(); err == nil {
			err = cerr
		}
		return err
	}), nil
}
