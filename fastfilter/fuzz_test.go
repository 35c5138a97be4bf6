package fastfilter_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/stack"

	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/internal/simlan"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzClassify from the unit-test frames")

// reference is a twin of the fixture's stack with no filter and plain
// netstack UDP sockets on the registered ports: what netstack does with a
// frame is the reference for what the filter may deliver or drop.
type reference struct {
	clock *sim.Clock
	ep    *sim.Endpoint
	eps   []tcpip.Endpoint
	buf   []byte
}

func newReference(t testing.TB) *reference {
	t.Helper()
	lan := simlan.New(t, simlan.Options{Seed: 1}, simlan.HostOptions{N: frames.Stack})
	h := lan.Hosts[0]
	r := &reference{clock: lan.Clock, ep: h.Link, buf: make([]byte, 1<<16)}
	for _, port := range []uint16{rtpPort, rtpPort + 1} {
		ep := h.BindUDP(t, port)
		ep.SocketOptions().SetReceiveOriginalDstAddress(true)
		r.eps = append(r.eps, ep)
	}
	return r
}

// deliver gives frame to netstack, stripped of an 802.1Q tag (netstack does
// not parse tags; a VLAN-aware link would strip it), and returns the
// datagrams its sockets received.
func (r *reference) deliver(frame []byte) []received {
	if len(frame) >= header.EthernetMinimumSize+4 && binary.BigEndian.Uint16(frame[12:]) == 0x8100 {
		frame = append(append([]byte(nil), frame[:12]...), frame[16:]...)
	}
	r.ep.DeliverFrame(frame)
	return r.drain()
}

func (r *reference) drain() []received {
	var got []received
	for _, ep := range r.eps {
		for {
			w := tcpip.SliceWriter(r.buf)
			res, err := ep.Read(&w, tcpip.ReadOptions{NeedRemoteAddr: true})
			if err != nil {
				break
			}
			dst := res.ControlMessages.OriginalDstAddress
			src := netip.AddrPortFrom(stack.AddrTo(res.RemoteAddr.Addr), res.RemoteAddr.Port)
			version := uint8(6)
			if src.Addr().Is4() {
				version = 4
			}
			got = append(got, received{
				Payload: string(r.buf[:res.Count]),
				Src:     src,
				Dst:     netip.AddrPortFrom(stack.AddrTo(dst.Addr), dst.Port),
				Version: version,
			})
		}
	}
	return got
}

// seedFrames are the unit tests' frames plus neighbour announcements.
func seedFrames() [][]byte {
	var seeds [][]byte
	for _, v6 := range []bool{false, true} {
		for _, tagged := range []bool{false, true} {
			for _, c := range classifyCases(v6, tagged) {
				seeds = append(seeds, c.frame)
			}
		}
	}
	big := make([]byte, 1200)
	for i := range big {
		big[i] = byte(i)
	}
	seeds = append(seeds, v4Frame(big).Build(), v6Frame(big).Build(),
		frames.GratuitousARP(header.ARPRequest, frames.PeerV4, frames.MAC(otherHost)),
		frames.UnsolicitedNA(frames.PeerV6, frames.MAC(otherHost)))
	return seeds
}

func FuzzClassify(f *testing.F) {
	if *writeSeeds {
		dir := filepath.Join("testdata", "fuzz", "FuzzClassify")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.Fatal(err)
		}
		for i, frame := range seedFrames() {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(frame)))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%03d", i)), []byte(body), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Add(v4Frame(testPayload).Build())
	f.Add(v6Frame(testPayload).Build())

	fx := newFixture(f, fixtureOptions{})
	fxRing := newFixture(f, fixtureOptions{ring: true})
	ref := newReference(f)
	fx.f.SubscribeNeighborUpdates(func(ip tcpip.Address, mac tcpip.LinkAddress) {
		if ip.Len() != 4 && ip.Len() != 16 {
			panic(fmt.Sprintf("neighbour update with address %v", ip))
		}
	})
	var runs int
	f.Fuzz(func(t *testing.T, frame []byte) {
		// Let timers both stacks set (neighbour probes, reassembly
		// timeouts) run now and then, or they pile up for ever.
		if runs++; runs%1024 == 0 {
			fx.clock.Advance(time.Second)
			fxRing.clock.Advance(time.Second)
			ref.clock.Advance(time.Second)
		}
		orig := bytes.Clone(frame)
		before := fx.f.Counters()
		verdict := fx.f.Hook(frame)
		after := fx.f.Counters()
		got := fx.rec.take()
		if !bytes.Equal(frame, orig) {
			t.Fatal("the hook modified the frame")
		}
		// A Ring, which verifies the UDP checksum while it copies, does
		// with the frame what a ReceiveFunc is given: the same datagram,
		// the same counters.
		ringBefore := fxRing.f.Counters()
		fxRing.f.Hook(frame)
		ringAfter := fxRing.f.Counters()
		ringGot := fxRing.takeRing()
		recGot := slices.Clone(got)
		for i := range recGot {
			recGot[i].ReceivedAt = time.Time{}
		}
		if diff := cmp.Diff(recGot, ringGot, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
			t.Fatalf("a Ring got other datagrams than a ReceiveFunc (-func +ring):\n%s", diff)
		}
		if diff := cmp.Diff(countersDelta(before, after), countersDelta(ringBefore, ringAfter)); diff != "" {
			t.Fatalf("a Ring moved other counters than a ReceiveFunc (-func +ring):\n%s", diff)
		}
		moved := countersSum(after) - countersSum(before)
		if moved != 1 {
			t.Fatalf("%d counters moved, want exactly 1: before %+v after %+v", moved, before, after)
		}
		_ = ref.drain() // anything a reassembly finished late is not this frame's
		switch {
		case verdict == link.Pass:
			if len(got) != 0 || after.ToNetstack != before.ToNetstack+1 {
				t.Fatalf("passed on, yet delivered %v (counters %+v)", got, after)
			}
		case len(got) == 1:
			if after.FastDelivered != before.FastDelivered+1 || got[0].ViaNetstack {
				t.Fatalf("delivered %v but counted %+v", got, after)
			}
			want := ref.deliver(frame)
			got[0].ReceivedAt = want0(want).ReceivedAt
			if len(want) != 1 || want[0] != got[0] {
				t.Fatalf("delivered %+v, netstack delivers %+v", got, want)
			}
		case len(got) == 0:
			if after.Dropped.Total() != before.Dropped.Total()+1 {
				t.Fatalf("handled without delivering or counting a drop: %+v", after)
			}
			want := ref.deliver(frame)
			zeroV6Checksum := after.Dropped.BadChecksum > before.Dropped.BadChecksum && hasZeroV6UDPChecksum(frame)
			// netstack takes some martians Linux drops (the stack's own
			// address, IPv6's unspecified address as source): the filter
			// drops them as Linux does.
			martian := after.Dropped.Martian > before.Dropped.Martian
			if len(want) != 0 && !zeroV6Checksum && !martian {
				t.Fatalf("dropped (%+v), but netstack delivers %+v", after.Dropped, want)
			}
		default:
			t.Fatalf("one frame delivered %d datagrams", len(got))
		}
	})
}

// countersDelta names the counters that moved between two snapshots, and by
// how much.
func countersDelta(before, after fastfilter.Counters) map[string]uint64 {
	moved := map[string]uint64{}
	var walk func(prefix string, b, a reflect.Value)
	walk = func(prefix string, b, a reflect.Value) {
		for i := range b.NumField() {
			name := prefix + b.Type().Field(i).Name
			switch fb, fa := b.Field(i), a.Field(i); fb.Kind() {
			case reflect.Struct:
				walk(name+".", fb, fa)
			case reflect.Uint64:
				if d := fa.Uint() - fb.Uint(); d != 0 {
					moved[name] = d
				}
			}
		}
	}
	walk("", reflect.ValueOf(before), reflect.ValueOf(after))
	return moved
}

func want0(w []received) received {
	if len(w) == 0 {
		return received{}
	}
	return w[0]
}

func countersSum(c fastfilter.Counters) uint64 {
	return c.FastDelivered + c.NetstackDelivered + c.Passed.Total() + c.Dropped.Total()
}

// hasZeroV6UDPChecksum reports an IPv6 UDP frame whose checksum field is 0:
// RFC 8200 says drop it; netstack accepts it in the one case in 65536 where
// the true checksum is 0xffff.
func hasZeroV6UDPChecksum(frame []byte) bool {
	off := header.EthernetMinimumSize
	if len(frame) >= off+4 && binary.BigEndian.Uint16(frame[12:]) == 0x8100 {
		off += 4
	}
	if len(frame) < off+header.IPv6MinimumSize+header.UDPMinimumSize || header.IPVersion(frame[off:]) != 6 {
		return false
	}
	return header.UDP(frame[off+header.IPv6MinimumSize:]).Checksum() == 0
}
