package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/frames"
)

// Payload sizes of the in-process workloads: a typical RTP packet (160
// bytes of G.711 plus a 12-byte header) and a large video packet.
var payloadSizes = []int{172, 1200}

// inProcessSuite compares, with no syscall, each fast path with netstack's
// own path for the same packets:
//
//   - receive: a frame in at the link, the payload out in the application
//     (a fastfilter Ring; a gonet UDP socket's ReadFrom);
//   - send: a payload in from the application, the frame out at the link
//     (udpfast.Sender.Send; gonet WriteTo);
//   - reflect: both, a datagram answered to its source by the application,
//     one datagram at a time on one goroutine: a fastfilter Ring read then
//     udpfast.Sender.Send, against gonet ReadFrom then WriteTo;
//   - reflect-inline (fast path only, no netstack twin): the answer sent
//     from inside the filter's receive function, with no ring and no
//     application read, as `serve --reflect` and the relays do.
func inProcessSuite() Suite {
	return Suite{
		Name:  "in-process",
		Title: "In-process, no syscalls: per packet, frame in at the link to payload out in the application and back",
		Workloads: func(cfg Config) ([]Workload, func() error, error) {
			var ws []Workload
			both := []Path{PathFast, PathNetstack}
			for _, kind := range []struct {
				name  string
				open  func(cfg Config, fam family, size int, path Path) (Bench, error)
				paths []Path
			}{
				{"receive", openReceive, both},
				{"send", openSend, both},
				{"reflect", openReflect, both},
				{"reflect-inline", openReflectInline, []Path{PathFast}},
			} {
				for _, fam := range families {
					for _, size := range payloadSizes {
						ws = append(ws, Workload{
							Name:  fmt.Sprintf("%s/%s/%d", kind.name, fam.name, size),
							Paths: kind.paths,
							Open: func(_ context.Context, path Path) (Bench, error) {
								return kind.open(cfg, fam, size, path)
							},
						})
					}
				}
			}
			return ws, nil, nil
		},
		Columns: packetColumns,
		Ratios:  []RatioSpec{{Metric: MetricNsPerPacket, Path: PathFast, Against: []Path{PathNetstack}}},
	}
}

// past is a deadline that has passed: a ring read returns what is held, or
// fails at once.
var past = time.Unix(1, 0)

// socketDeadline bounds a gonet read in a loop of n packets, so a packet
// that never arrives fails the run instead of hanging it.
func socketDeadline(n int) time.Time {
	return time.Now().Add(10*time.Second + time.Duration(n)*10*time.Microsecond)
}

func openReceive(cfg Config, fam family, size int, path Path) (Bench, error) {
	h, err := newHost(hostOptions{peers: []netip.Addr{fam.peer}, fast: path == PathFast})
	if err != nil {
		return nil, err
	}
	local, peer := netip.AddrPortFrom(fam.local, basePort), netip.AddrPortFrom(fam.peer, peerPort)
	frame := frames.UDP{Src: peer, Dst: local, Payload: frames.Pattern(size), Flags: header.IPv4FlagDontFragment}.Build()
	buf := make([]byte, 2048)
	switch path {
	case PathFast:
		ring, err := fastfilter.NewRing(fastfilter.RingOptions{})
		if err != nil {
			h.close()
			return nil, err
		}
		if _, err := h.filter.RegisterRing(basePort, basePort, ring); err != nil {
			h.close()
			return nil, err
		}
		return NewLoop(cfg.RoundTime, func(n int) error {
			for range n {
				h.link.DeliverFrame(frame)
				if got, _, err := ring.Read(buf, past); err != nil || got != size {
					return fmt.Errorf("%w: ring read %d bytes, %v", errNotDelivered, got, err)
				}
			}
			return nil
		}, h.close), nil
	default:
		conn, err := h.st.ListenUDP(local)
		if err != nil {
			h.close()
			return nil, err
		}
		return NewLoop(cfg.RoundTime, func(n int) error {
			if err := conn.SetReadDeadline(socketDeadline(n)); err != nil {
				return err
			}
			for range n {
				h.link.DeliverFrame(frame)
				if got, _, err := conn.ReadFrom(buf); err != nil || got != size {
					return fmt.Errorf("%w: socket read %d bytes, %v", errNotDelivered, got, err)
				}
			}
			return nil
		}, func() error { conn.Close(); return h.close() }), nil
	}
}

func openSend(cfg Config, fam family, size int, path Path) (Bench, error) {
	h, err := newHost(hostOptions{peers: []netip.Addr{fam.peer}, fast: path == PathFast})
	if err != nil {
		return nil, err
	}
	local, peer := netip.AddrPortFrom(fam.local, basePort), netip.AddrPortFrom(fam.peer, peerPort)
	payload := frames.Pattern(size)
	switch path {
	case PathFast:
		// As an application sets it up: the port registered with the
		// filter, whose netstack endpoint is the Sender's fallback lane.
		reg, err := h.filter.Register(basePort, basePort, func(*fastfilter.Datagram) {})
		if err != nil {
			h.close()
			return nil, err
		}
		snd, err := h.portSender(reg, local)
		if err != nil {
			h.close()
			return nil, err
		}
		return NewLoop(cfg.RoundTime, func(n int) error {
			before := h.written()
			for range n {
				if err := snd.Send(payload, peer); err != nil {
					return err
				}
			}
			return h.expectWritten(before, n)
		}, func() error {
			// The first datagram makes the port's policy ARP entry through
			// netstack; every other one must have gone fast.
			if fb := snd.Stats().FallbackTotal(); fb > 1 {
				return fmt.Errorf("%d datagrams went through netstack", fb)
			}
			return h.close()
		}), nil
	default:
		conn, err := h.st.ListenUDP(local)
		if err != nil {
			h.close()
			return nil, err
		}
		to := net.UDPAddrFromAddrPort(peer)
		return NewLoop(cfg.RoundTime, func(n int) error {
			before := h.written()
			for range n {
				if _, err := conn.WriteTo(payload, to); err != nil {
					return err
				}
			}
			return h.expectWritten(before, n)
		}, func() error { conn.Close(); return h.close() }), nil
	}
}

func openReflect(cfg Config, fam family, size int, path Path) (Bench, error) {
	h, err := newHost(hostOptions{peers: []netip.Addr{fam.peer}, fast: path == PathFast})
	if err != nil {
		return nil, err
	}
	local, peer := netip.AddrPortFrom(fam.local, basePort), netip.AddrPortFrom(fam.peer, peerPort)
	frame := frames.UDP{Src: peer, Dst: local, Payload: frames.Pattern(size), Flags: header.IPv4FlagDontFragment}.Build()
	switch path {
	case PathFast:
		// The application's loop, one datagram at a time on this
		// goroutine, as the gonet reflector below: the filter fills the
		// port's Ring, the application reads it and sends the answer.
		ring, err := fastfilter.NewRing(fastfilter.RingOptions{})
		if err != nil {
			h.close()
			return nil, err
		}
		reg, err := h.filter.RegisterRing(basePort, basePort, ring)
		if err != nil {
			h.close()
			return nil, err
		}
		snd, err := h.portSender(reg, local)
		if err != nil {
			h.close()
			return nil, err
		}
		buf := make([]byte, 2048)
		return NewLoop(cfg.RoundTime, func(n int) error {
			before := h.written()
			for range n {
				h.link.DeliverFrame(frame)
				got, from, err := ring.Read(buf, past)
				if err != nil {
					return fmt.Errorf("%w: ring read: %v", errNotDelivered, err)
				}
				if err := snd.Send(buf[:got], from); err != nil {
					return err
				}
			}
			return h.expectWritten(before, n)
		}, func() error {
			if fb := snd.Stats().FallbackTotal(); fb > 1 {
				return fmt.Errorf("%d datagrams went through netstack", fb)
			}
			return h.close()
		}), nil
	default:
		conn, err := h.st.ListenUDP(local)
		if err != nil {
			h.close()
			return nil, err
		}
		buf := make([]byte, 2048)
		// The gonet reflector's loop, one datagram at a time on this
		// goroutine (a real one would also pay a goroutine wake-up).
		return NewLoop(cfg.RoundTime, func(n int) error {
			if err := conn.SetReadDeadline(socketDeadline(n)); err != nil {
				return err
			}
			before := h.written()
			for range n {
				h.link.DeliverFrame(frame)
				got, from, err := conn.ReadFrom(buf)
				if err != nil {
					return fmt.Errorf("%w: %v", errNotDelivered, err)
				}
				if _, err := conn.WriteTo(buf[:got], from); err != nil {
					return err
				}
			}
			return h.expectWritten(before, n)
		}, func() error { conn.Close(); return h.close() }), nil
	}
}

// openReflectInline answers from inside the filter's receive function (the
// fast reflector of `serve --reflect`): no ring, no application read. It
// has no netstack twin; the reflect workload is the like-for-like one.
func openReflectInline(cfg Config, fam family, size int, _ Path) (Bench, error) {
	h, err := newHost(hostOptions{peers: []netip.Addr{fam.peer}, fast: true})
	if err != nil {
		return nil, err
	}
	local, peer := netip.AddrPortFrom(fam.local, basePort), netip.AddrPortFrom(fam.peer, peerPort)
	frame := frames.UDP{Src: peer, Dst: local, Payload: frames.Pattern(size), Flags: header.IPv4FlagDontFragment}.Build()
	r, err := newFastReflector(h.filter, h.table, h.link, basePort, basePort, []netip.Addr{fam.local})
	if err != nil {
		h.close()
		return nil, err
	}
	return NewLoop(cfg.RoundTime, func(n int) error {
		before := h.written()
		for range n {
			h.link.DeliverFrame(frame)
		}
		return h.expectWritten(before, n)
	}, func() error {
		_, fb := r.stats()
		err := r.close()
		if fb > 1 {
			err = fmt.Errorf("%d datagrams went through netstack", fb)
		}
		if cerr := h.close(); err == nil {
			err = cerr
		}
		return err
	}), nil
}
