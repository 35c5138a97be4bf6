package mediaport_test

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/fastfilter"
	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/policyarp"
)

func TestNewManagerRejectsBadOptions(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	for _, tc := range []struct {
		opts mediaport.Options
		want string
	}{
		{mediaport.Options{}, "port range 0-0 is empty"},
		{mediaport.Options{PortMin: 30010, PortMax: 30000}, "port range 30010-30000 is empty"},
		{mediaport.Options{PortMin: 30000, PortMax: 30010, NIC: 1}, "no NIC 1"},
		{mediaport.Options{PortMin: 30000, PortMax: 30010, ARP: policyarp.Options{Aging: 1e9, Refresh: 2e9}}, "must be shorter than the aging time"},
		{mediaport.Options{PortMin: 30000, PortMax: 30010, Ring: fastfilter.RingOptions{SlotSize: 1 << 20}}, "Options.Ring"},
	} {
		_, err := mediaport.NewManager(l.a.st, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewManager(%+v): error %v, want one containing %q", tc.opts, err, tc.want)
		}
	}
}

// TestPortsAllocateFromTheRange: ports and RTP/RTCP pairs come from the
// range, next fit, until it is exhausted; the errors say which rule failed.
func TestPortsAllocateFromTheRange(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{PortMin: 20000, PortMax: 20005})
	m := l.a.m

	var pairs []*mediaport.Pair
	for range 3 {
		p, err := m.OpenPair(0)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, p)
	}
	var got [][2]uint16
	for _, p := range pairs {
		got = append(got, [2]uint16{p.RTP.Port(), p.RTCP.Port()})
	}
	if diff := cmp.Diff([][2]uint16{{20000, 20001}, {20002, 20003}, {20004, 20005}}, got); diff != "" {
		t.Errorf("allocated pairs (-want +got):\n%s", diff)
	}
	_, err := m.OpenPair(0)
	if !errors.Is(err, mediaport.ErrExhausted) || !strings.Contains(err.Error(), "no free even/odd pair in 20000-20005 (6 of 6 ports open)") {
		t.Errorf("OpenPair on a full range: %v", err)
	}
	if _, err := m.Open(0); !errors.Is(err, mediaport.ErrExhausted) || !strings.Contains(err.Error(), "no free port in 20000-20005") {
		t.Errorf("Open on a full range: %v", err)
	}

	if err := pairs[1].Close(); err != nil {
		t.Fatal(err)
	}
	if p, err := m.OpenPair(0); err != nil || p.RTP.Port() != 20002 {
		t.Errorf("OpenPair after closing 20002/20003: %v, %v", p, err)
	}
	for _, tc := range []struct {
		open func() error
		want error
		text string
	}{
		{func() error { _, err := m.Open(20003); return err }, mediaport.ErrPortInUse, "20003 is open already"},
		{func() error { _, err := m.Open(19999); return err }, mediaport.ErrPortRange, "20000-20005: 19999"},
		{func() error { _, err := m.OpenPair(20001); return err }, mediaport.ErrOddRTPPort, "20001 is odd"},
		{func() error { _, err := m.OpenFunc(20001, nil); return err }, nil, "nil receive function"},
	} {
		err := tc.open()
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("got error %v, want %v containing %q", err, tc.want, tc.text)
		}
	}
}

func TestAllocationIsNextFit(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{PortMin: 20000, PortMax: 20003})
	var got []uint16
	for range 6 {
		p, err := l.a.m.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Port())
		p.Close()
	}
	// A port just closed is the last to be handed out again.
	if diff := cmp.Diff([]uint16{20000, 20001, 20002, 20003, 20000, 20001}, got); diff != "" {
		t.Errorf("ports handed out (-want +got):\n%s", diff)
	}
}

func TestPortTakenByNetstackSocket(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	sock, err := l.a.st.ListenUDP(netip.MustParseAddrPort("198.51.100.1:20050"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	_, err = l.a.m.Open(20050)
	if !errors.Is(err, mediaport.ErrPortInUse) || !errors.Is(err, fastfilter.ErrPortInUse) {
		t.Errorf("Open of a port a netstack socket holds: %v", err)
	}
	// The failed open left nothing behind: the port opens once the socket
	// is gone.
	sock.Close()
	if _, err := l.a.m.Open(20050); err != nil {
		t.Errorf("Open after the socket closed: %v", err)
	}
}

func TestManagerCloseClosesPorts(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{}, mediaport.Options{})
	p := simlan.Open(t, l.a.m, 20000)
	if err := l.a.m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Manager.Close: %v", err)
	}
	if _, err := p.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB4, 20000)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after Manager.Close: %v", err)
	}
	if _, err := l.a.m.Open(0); !errors.Is(err, mediaport.ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
	if err := l.a.m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
