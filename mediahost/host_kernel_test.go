//go:build linux

package mediahost_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/mediahost"
)

// hangGuard bounds the wait for the kernel's datagrams; it turns a hang
// into a failure and measures nothing.
const hangGuard = 30 * time.Second

// TestExampleWithTheKernel runs Example's code with the kernel at the other
// end of the TAP, in a network namespace: a kernel UDP socket (socat) sends
// RTP to the media port over IPv4 and IPv6, and the application receives
// every packet through the fast path. Close then tears everything down.
func TestExampleWithTheKernel(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "socat")
	ns := netnstest.NewNamespace(t)
	name := netnstest.UniqueName("mst")
	h, err := mediahost.New(hostOptions(name))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ns.AdoptLink(name)
	pair, err := h.Ports().OpenPair(20000)
	if err != nil {
		t.Fatal(err)
	}
	pair.RTP.SetReadDeadline(time.Now().Add(hangGuard))

	const kernelPort = 40000
	var want strings.Builder
	for i := range 4 {
		to, from := fmt.Sprintf("UDP4-SENDTO:198.51.100.2:20000,sourceport=%d", kernelPort), netip.MustParseAddr("198.51.100.1")
		if i%2 == 1 {
			to, from = fmt.Sprintf("UDP6-SENDTO:[2001:db8::2]:20000,sourceport=%d", kernelPort), netip.MustParseAddr("2001:db8::1")
		}
		pkt, err := (&rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(100 + i), Timestamp: uint32(160 * i), SSRC: 0x6d730001},
			Payload: make([]byte, 160),
		}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		// One socat run sends its stdin, one pipe write, as one datagram.
		if out, err := ns.ExecInput(pkt, "socat", "-u", "-b", "8192", "STDIN", to); err != nil {
			t.Fatalf("socat to %s: %v: %s", to, err, out)
		}
		fmt.Fprintf(&want, "RTP from %v: SSRC 0x6d730001, sequence %d, timestamp %d, 160 bytes of payload type 0\n",
			netip.AddrPortFrom(from, kernelPort), 100+i, 160*i)
	}
	var got strings.Builder
	if err := receiveRTP(pair.RTP, 4, &got); err != nil {
		t.Fatalf("receiving the kernel's 4 RTP packets: %v (received:\n%s)", err, got.String())
	}
	if diff := cmp.Diff(want.String(), got.String()); diff != "" {
		t.Errorf("the application printed (-want +got):\n%s", diff)
	}
	st := pair.RTP.Stats()
	t.Log(st)
	if st.Receive.FastDelivered != 4 || st.Receive.NetstackDelivered != 0 {
		t.Errorf("%d received fast, %d through netstack; want all 4 fast: %v", st.Receive.FastDelivered, st.Receive.NetstackDelivered, st)
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestTAPOnOtherInterface: tap:NAME on an interface that is not a TAP says
// what it is and what to ask for instead: raw:NAME for a veth, raw:IFACE
// (another interface) for the loopback; never to delete it.
func TestTAPOnOtherInterface(t *testing.T) {
	ns := netnstest.NewNamespace(t)
	veth := ns.AddVeth()
	for _, tc := range []struct{ name, want string }{
		{veth.Outside, "tap: " + veth.Outside + " is a veth interface, not a TAP device; use raw:" + veth.Outside +
			" to run on it (AF_PACKET), or another name to create a TAP"},
		{"lo", "tap: lo is the loopback interface, not a TAP device; use raw:IFACE to run on an existing Ethernet interface (e.g. a veth end), or another name to create a TAP"},
	} {
		opts := hostOptions(tc.name)
		h, err := mediahost.New(opts)
		if err == nil {
			h.Close()
			t.Fatalf("mediahost.New on tap:%s succeeded, want an error", tc.name)
		}
		if err.Error() != tc.want {
			t.Errorf("mediahost.New on tap:%s = %q, want %q", tc.name, err, tc.want)
		}
	}
}
