package mediaport

import (
	"testing"

	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// TestEphemeralPortsStayOutOfTheMediaRange: netstack's ephemeral ports
// (16000-65535 by default) are narrowed to their larger part outside the
// media range, and left alone when the media range is outside them or
// leaves too little.
func TestEphemeralPortsStayOutOfTheMediaRange(t *testing.T) {
	for _, tc := range []struct {
		lo, hi              uint16
		wantFirst, wantLast uint16
	}{
		{20000, 20999, 21000, 65535},
		{60000, 65535, 16000, 59999},
		{10000, 15999, 16000, 65535},
		{16000, 65535, 16000, 65535},
		{1024, 65535, 16000, 65535},
		{16500, 65000, 16000, 65535},
	} {
		ns := tcpipstack.New(tcpipstack.Options{})
		keepEphemeralPortsOut(ns, tc.lo, tc.hi)
		if first, last := ns.PortRange(); first != tc.wantFirst || last != tc.wantLast {
			t.Errorf("media %d-%d: ephemeral %d-%d, want %d-%d", tc.lo, tc.hi, first, last, tc.wantFirst, tc.wantLast)
		}
		ns.Close()
	}
}
