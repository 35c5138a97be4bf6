package ethlink_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/mediastack/mediastack/internal/discard"
	"github.com/mediastack/mediastack/internal/frames"
	"github.com/mediastack/mediastack/link"
	"github.com/mediastack/mediastack/link/ethlink"
)

const (
	testVLAN = 100
	dscpEF   = 46 // expedited forwarding, media (RFC 4594)
)

// voiceFrame is a media datagram marked EF (DSCP 46), tagged with vid when
// tagged; over IPv6 when v6.
func voiceFrame(tagged bool, vid uint16, v6 bool) []byte {
	u := frames.UDP{
		Src:     netip.AddrPortFrom(frames.PeerV4, 40000),
		Dst:     netip.AddrPortFrom(frames.StackV4, 20000),
		SrcMAC:  frames.StackMAC, // as the stack sends it
		DstMAC:  frames.PeerMAC,
		Payload: []byte("rtp payload"),
		Tagged:  tagged, VID: vid, // frames tags with priority 5, EF's class
		MutateIP: func(ip []byte) {
			if header.IPVersion(ip) == header.IPv4Version {
				ip[1] = dscpEF << 2
			} else {
				header.IPv6(ip).SetTOS(dscpEF<<2, 0)
			}
		},
	}
	if v6 {
		u.Src = netip.AddrPortFrom(frames.PeerV6, 40000)
		u.Dst = netip.AddrPortFrom(frames.StackV6, 20000)
	}
	return u.Build()
}

// inbound is voiceFrame as the peer sends it to the stack.
func inbound(tagged bool, vid uint16) []byte {
	f := voiceFrame(tagged, vid, false)
	copy(f[0:], ourMAC)
	copy(f[6:], peerMAC)
	return f
}

func TestVLANTagsOffOnReceive(t *testing.T) {
	for _, tc := range []struct {
		name string
		vlan uint16
		// frames delivered, by (tagged, vid), and what the hook sees
		tagged bool
		vid    uint16
		pass   bool
		drop   func(*ethlink.Stats) uint64
	}{
		{"link VLAN, its tag", testVLAN, true, testVLAN, true, nil},
		{"link VLAN, other VLAN", testVLAN, true, 7, false, func(s *ethlink.Stats) uint64 { return s.RxDropOtherVLAN.Load() }},
		{"link VLAN, untagged", testVLAN, false, 0, false, func(s *ethlink.Stats) uint64 { return s.RxDropUntagged.Load() }},
		{"link VLAN, priority tag", testVLAN, true, 0, false, func(s *ethlink.Stats) uint64 { return s.RxDropUntagged.Load() }},
		{"no VLAN, untagged", 0, false, 0, true, nil},
		{"no VLAN, priority tag", 0, true, 0, true, nil},
		{"no VLAN, a VLAN's frame", 0, true, 7, false, func(s *ethlink.Stats) uint64 { return s.RxDropOtherVLAN.Load() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := newEndpoint(t, ethlink.Options{VLAN: tc.vlan})
			var d dispatcher
			ep.Attach(&d)
			var hooked [][]byte
			ep.SetFrameHook(func(f []byte) link.Verdict {
				hooked = append(hooked, append([]byte(nil), f...))
				return link.Pass
			})
			ep.DeliverFrame(inbound(tc.tagged, tc.vid))
			var want [][]byte
			if tc.pass {
				want = [][]byte{inbound(false, 0)}
			}
			if diff := cmp.Diff(want, hooked); diff != "" {
				t.Errorf("frames the hook saw (-want +got):\n%s", diff)
			}
			if got, want := ep.Stats.RxToNetstack.Load(), uint64(len(want)); got != want {
				t.Errorf("RxToNetstack = %d, want %d", got, want)
			}
			if tc.drop != nil {
				if got := tc.drop(&ep.Stats); got != 1 {
					t.Errorf("drop counter = %d, want 1", got)
				}
			}
		})
	}
}

func TestVLANTagsOnAtSend(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		dev := newDevice()
		ep := newEndpoint(t, ethlink.Options{Device: dev, VLAN: testVLAN})
		if n, err := ep.WriteFrames([][]byte{voiceFrame(false, 0, v6), frameFrom(ourMAC, "not IP")[:10]}); n != 2 || err != nil {
			t.Fatalf("WriteFrames = %d, %v", n, err)
		}
		// PCP 5 from EF; a runt goes as it is (the device refuses it).
		want := [][]byte{voiceFrame(true, testVLAN, v6), frameFrom(ourMAC, "not IP")[:10]}
		if diff := cmp.Diff(want, dev.written); diff != "" {
			t.Errorf("v6 %v: frames written (-want +got):\n%s", v6, diff)
		}
	}
}

func TestVLANPCPZeroForBestEffortAndARP(t *testing.T) {
	dev := newDevice()
	ep := newEndpoint(t, ethlink.Options{Device: dev, VLAN: testVLAN})
	arp := frame(header.EthernetBroadcastAddress, header.ARPProtocolNumber, "arp request body..........")
	if _, err := ep.WriteFrames([][]byte{arp}); err != nil {
		t.Fatal(err)
	}
	got := dev.written[0]
	if tag := got[12:16]; string(tag) != "\x81\x00\x00\x64" {
		t.Errorf("tag % x, want 81 00 00 64 (PCP 0, VID 100)", tag)
	}
	if diff := cmp.Diff(arp[12:], got[16:]); diff != "" {
		t.Errorf("after the tag (-want +got):\n%s", diff)
	}
}

func TestVLANSendAllocatesNothing(t *testing.T) {
	ep := newEndpoint(t, ethlink.Options{Device: discard.New(2048), VLAN: testVLAN})
	batch := [][]byte{voiceFrame(false, 0, false), voiceFrame(false, 0, true)}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := ep.WriteFrames(batch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteFrames on a VLAN: %v allocations per batch, want 0", allocs)
	}
	in := inbound(true, testVLAN)
	buf := make([]byte, len(in))
	ep.Attach(&dispatcher{})
	ep.SetFrameHook(func([]byte) link.Verdict { return link.Handled })
	allocs = testing.AllocsPerRun(1000, func() {
		copy(buf, in)
		ep.DeliverFrame(buf)
	})
	if allocs != 0 {
		t.Errorf("DeliverFrame of a tagged frame the hook handles: %v allocations, want 0", allocs)
	}
}

func BenchmarkWriteFrames(b *testing.B) {
	for _, vlan := range []uint16{0, testVLAN} {
		name := "untagged"
		if vlan != 0 {
			name = "vlan"
		}
		b.Run(name, func(b *testing.B) {
			ep, err := ethlink.New(ethlink.Options{Device: discard.New(2048), MAC: ourMAC, MTU: 1500, VLAN: vlan})
			if err != nil {
				b.Fatal(err)
			}
			defer ep.Close()
			batch := [][]byte{voiceFrame(false, 0, false)}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ep.WriteFrames(batch)
			}
		})
	}
}

func TestVLANOptionsValidated(t *testing.T) {
	for _, opts := range []ethlink.Options{
		{Device: newDevice(), MAC: ourMAC, MTU: 1500, VLAN: 4095},
		{Device: newDevice(), MAC: ourMAC, MTU: 1500, VLAN: testVLAN, UDPSegmentation: true},
	} {
		if _, err := ethlink.New(opts); err == nil {
			t.Errorf("New(VLAN %d, UDPSegmentation %v) succeeded, want an error", opts.VLAN, opts.UDPSegmentation)
		}
	}
}
