package udpfast_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/mediastack/mediastack/udpfast"
)

// BenchmarkSend compares a fast Send with netstack's own path (gonet
// WriteTo) for the same datagram to the same destination (a static
// neighbour), both ending in the same in-memory link: an ethlink endpoint
// over a linktest.Sink, which copies every frame into a flat buffer as a
// write to a file descriptor would.
func BenchmarkSend(b *testing.B) {
	for _, path := range []string{"fast", "netstack"} {
		for _, fam := range families {
			for _, size := range []int{172, 1200} {
				b.Run(fmt.Sprintf("%s/%s/%d", path, fam.name, size), func(b *testing.B) {
					s := newSinkStack(b, nil)
					local, dst := netip.AddrPortFrom(fam.a, rtp), netip.AddrPortFrom(fam.b, sink)
					payload := make([]byte, size)
					var send func() error
					switch path {
					case "fast":
						ep := bindUDP(b, s.st, local)
						snd := s.sender(b, local, udpfast.EndpointFallback{Endpoint: ep}, udpfast.Options{})
						send = func() error { return snd.Send(payload, dst) }
						defer func() {
							if st := snd.Stats(); st.FallbackTotal() != 0 {
								b.Fatalf("fallbacks %v: not all on the fast path", st.Fallbacks)
							}
						}()
					case "netstack":
						conn, err := s.st.ListenUDP(local)
						if err != nil {
							b.Fatal(err)
						}
						defer conn.Close()
						to := net.UDPAddrFromAddrPort(dst)
						send = func() error { _, err := conn.WriteTo(payload, to); return err }
					}
					if err := send(); err != nil { // warm up: the entry, netstack's route cache
						b.Fatal(err)
					}
					frames0, _ := s.sink.Written()
					b.ReportAllocs()
					b.SetBytes(int64(size))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := send(); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
					if frames, _ := s.sink.Written(); frames-frames0 != uint64(b.N) {
						b.Fatalf("%d frames reached the link for %d datagrams", frames-frames0, b.N)
					}
				})
			}
		}
	}
}

// BenchmarkSendBatch sends batches of 32 172-byte IPv4 datagrams, one link
// write per batch. ns/op is per batch; ns/pkt and pkts/s per datagram.
func BenchmarkSendBatch(b *testing.B) {
	const batch = 32
	b.Run(fmt.Sprintf("fast/%d", batch), func(b *testing.B) {
		s := newSinkStack(b, nil)
		local, dst := netip.AddrPortFrom(v4.a, rtp), netip.AddrPortFrom(v4.b, sink)
		ep := bindUDP(b, s.st, local)
		snd := s.sender(b, local, udpfast.EndpointFallback{Endpoint: ep}, udpfast.Options{})
		payloads := make([][]byte, batch)
		for i := range payloads {
			payloads[i] = make([]byte, 172)
		}
		dsts := []netip.AddrPort{dst}
		if _, err := snd.SendBatch(payloads, dsts); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(batch * 172)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := snd.SendBatch(payloads, dsts); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		pkts := float64(b.N) * batch
		b.ReportMetric(b.Elapsed().Seconds()*1e9/pkts, "ns/pkt")
		b.ReportMetric(pkts/b.Elapsed().Seconds(), "pkts/s")
		if st := snd.Stats(); st.FallbackTotal() != 0 {
			b.Fatalf("fallbacks %v", st.Fallbacks)
		}
	})
}
