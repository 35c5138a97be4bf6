package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mediastack/mediastack/internal/netnstest"
)

func TestCmsgRoundTrip(t *testing.T) {
	b := make([]byte, unix.CmsgSpace(4))
	putCmsgHeader(b, unix.CmsgLen(4), unix.SOL_UDP, unix.UDP_GRO)
	copy(b[unix.CmsgLen(0):], []byte{172, 0, 0, 0})
	if got := groSize(b); got != 172 {
		t.Errorf("groSize = %d, want 172", got)
	}
	for _, bad := range [][]byte{nil, b[:unix.CmsgLen(0)-1], b[:unix.CmsgLen(2)]} {
		if got := groSize(bad); got != 0 {
			t.Errorf("groSize(%d bytes) = %d, want 0", len(bad), got)
		}
	}
	other := make([]byte, unix.CmsgSpace(4))
	putCmsgHeader(other, unix.CmsgLen(4), unix.SOL_SOCKET, unix.SCM_RIGHTS)
	if got := groSize(append(other, b...)); got != 172 {
		t.Errorf("groSize after another message = %d, want 172", got)
	}
}

// TestKernelReflectorTrains: the kernel anchor answers a UDP_SEGMENT train
// and single datagrams with the same datagrams, in order, whether the
// kernel merged them on receive (UDP_GRO), the reflector gathered them into
// a train, or neither.
func TestKernelReflectorTrains(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.NewNamespace(t)
	ns.MustIP("link", "set", "lo", "up")
	var refl, client *net.UDPConn
	var pc batchConn
	err := ns.Enter(func() error {
		var err error
		if refl, pc, err = listenKernelReflector(netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
			return err
		}
		client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	done := make(chan error, 1)
	go func() { done <- reflectBatches(pc) }()
	defer func() {
		refl.Close()
		if err := <-done; err != nil {
			t.Errorf("reflectBatches: %v", err)
		}
	}()
	to := refl.LocalAddr().(*net.UDPAddr)

	const n, size = 10, 172
	train := make([]byte, n*size)
	for i := range train {
		train[i] = byte(i / size)
	}
	seg := make([]byte, unix.CmsgSpace(2))
	putCmsgHeader(seg, unix.CmsgLen(2), unix.SOL_UDP, unix.UDP_SEGMENT)
	binary.NativeEndian.PutUint16(seg[unix.CmsgLen(0):], size)
	if _, _, err := client.WriteMsgUDP(train, seg, to); err != nil {
		t.Fatalf("sending a UDP_SEGMENT train: %v", err)
	}
	// Single datagrams: the reflector may gather those of one size that
	// one read returns into a train of its own; the answer is the same.
	singles := [][]byte{[]byte("one"), bytes.Repeat([]byte{7}, 1200)}
	for i := range 5 {
		singles = append(singles, bytes.Repeat([]byte{byte(0x10 + i)}, 300))
	}
	singles = append(singles, bytes.Repeat([]byte{0x20}, 100), bytes.Repeat([]byte{0x21}, 300))
	for _, p := range singles {
		if _, err := client.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
	want := make([][]byte, 0, n+len(singles))
	for i := range n {
		want = append(want, train[i*size:(i+1)*size])
	}
	want = append(want, singles...)
	buf := make([]byte, 65536)
	for i, w := range want {
		if err := client.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got, _, err := client.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, len(want), err)
		}
		if !bytes.Equal(buf[:got], w) {
			t.Fatalf("datagram %d: %s", i, describe(buf[:got], w))
		}
	}
}

func describe(got, want []byte) string {
	return fmt.Sprintf("got %d bytes starting %x, want %d bytes starting %x", len(got), got[:min(8, len(got))], len(want), want[:min(8, len(want))])
}

// TestGeneratorCountsTrainsBySegment: the generator's reply socket takes a
// reply train (UDP_SEGMENT here, a TAP's GSO frame in the bench) as one
// message and counts every datagram in it, as it counts single replies,
// and not those of another step.
func TestGeneratorCountsTrainsBySegment(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.NewNamespace(t)
	ns.MustIP("link", "set", "lo", "up")
	g := &generator{start: time.Now(), sockets: map[netip.AddrPort]*genSocket{}}
	var s *genSocket
	var client *net.UDPConn
	err := ns.Enter(func() error {
		var err error
		if s, err = g.socket(netip.MustParseAddrPort("127.0.0.1:40000")); err != nil {
			return err
		}
		client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.conn.Close()
	defer client.Close()
	const epoch, n, size = 7, 10, 172
	s.mu.Lock()
	s.epoch, s.latency = epoch, true
	s.mu.Unlock()
	reply := func(step uint32, seq int) []byte {
		b := make([]byte, size)
		binary.BigEndian.PutUint32(b, probeMagic)
		binary.BigEndian.PutUint32(b[4:], step)
		binary.BigEndian.PutUint64(b[8:], uint64(seq))
		binary.BigEndian.PutUint64(b[16:], uint64(g.now()))
		return b
	}
	// The kernel merges the train for the generator's socket only with
	// UDP_GRO on.
	var gro int
	if rc, err := s.conn.SyscallConn(); err != nil {
		t.Fatal(err)
	} else if err := rc.Control(func(fd uintptr) { gro, err = unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO) }); err != nil || gro != 1 {
		t.Fatalf("UDP_GRO on the generator's socket: %d, %v; want 1", gro, err)
	}
	// The last datagram of the train is shorter, as a train's may be.
	var train []byte
	for i := range n - 1 {
		train = append(train, reply(epoch, i)...)
	}
	train = append(train, reply(epoch, n-1)[:100]...)
	seg := make([]byte, unix.CmsgSpace(2))
	putCmsgHeader(seg, unix.CmsgLen(2), unix.SOL_UDP, unix.UDP_SEGMENT)
	binary.NativeEndian.PutUint16(seg[unix.CmsgLen(0):], size)
	to := s.conn.LocalAddr().(*net.UDPAddr)
	if _, _, err := client.WriteMsgUDP(train, seg, to); err != nil {
		t.Fatalf("sending a UDP_SEGMENT train: %v", err)
	}
	for _, p := range [][]byte{reply(epoch, n), reply(epoch-1, n+1), reply(epoch, n+2)[:probeHeaderLen-1]} {
		if _, err := client.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
	// The last datagram is one more of this step's, sent "in the future"
	// so its round trip comes out negative: once that is recorded, every
	// earlier datagram has been read.
	last := reply(epoch, n+3)
	binary.BigEndian.PutUint64(last[16:], uint64(math.MaxInt64))
	if _, err := client.WriteToUDP(last, to); err != nil {
		t.Fatal(err)
	}
	const want = n + 2
	netnstest.WaitFor(t, netnstest.StateTimeout, "the generator to count the last reply", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !slices.ContainsFunc(s.rtts, func(d time.Duration) bool { return d < 0 }) {
			return fmt.Errorf("%d counted: %w", s.received, netnstest.ErrNotYet)
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.received != want || len(s.rtts) != want {
		t.Errorf("counted %d replies with %d round trips, want %d of each (a train of %d, 2 singles; not another step's, not a cut one)",
			s.received, len(s.rtts), want, n)
	}
}
