//go:build linux

package raw_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/raw"
	"github.com/mediastack/mediastack/tcpoffload"
)

// TestSoftOffloadToKernel: in soft mode the AF_PACKET link cuts netstack's
// large packets into MSS-sized frames; the kernel's socket at the other end
// of the veth receives the stream intact, over IPv4 and IPv6.
func TestSoftOffloadToKernel(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTools(t, "nc", "sha256sum")
	ns, veth := newVeth(t)
	eng, err := tcpoffload.New(tcpoffload.Options{Mode: tcpoffload.Soft})
	if err != nil {
		t.Fatal(err)
	}
	ep := newEndpoint(t, raw.Options{Interface: veth.Outside, TCPOffload: eng})
	st := attach(t, ep)
	payload := make([]byte, 16<<20)
	for i := range payload {
		payload[i] = byte(i*31 + i>>12)
	}
	sum := sha256.Sum256(payload)
	for i, addr := range []netip.Addr{netnstest.KernelV4.Addr(), netnstest.KernelV6.Addr()} {
		port := uint16(5001 + i)
		family := "-4"
		if addr.Is6() {
			family = "-6"
		}
		sink := ns.Start("sh", "-c", "nc "+family+" -l -p "+strconv.Itoa(int(port))+" -N | sha256sum")
		dst := netip.AddrPortFrom(addr, port)
		netnstest.WaitFor(t, netnstest.StateTimeout, fmt.Sprintf("nc listening on TCP port %d", port), func() error {
			return ns.Listening("tcp", port)
		})
		var c net.Conn
		netnstest.WaitFor(t, netnstest.StateTimeout, fmt.Sprintf("a connection from the stack to nc at %v (the stack's address past DAD)", dst), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			c, err = st.DialTCP(ctx, dst)
			return err
		})
		// A hang guard for a stalled stream.
		if err := c.SetDeadline(time.Now().Add(netnstest.StateTimeout)); err != nil {
			t.Fatal(err)
		}
		_, err := c.Write(payload)
		if err == nil {
			err = c.Close()
		}
		if err != nil {
			t.Fatalf("sending to %v: %v", dst, err)
		}
		out, werr := sink.Wait()
		if werr != nil || !strings.HasPrefix(out, hex.EncodeToString(sum[:])) {
			t.Errorf("kernel at %v received data with sha256 %q (%v), want %x", dst, out, werr, sum)
		}
	}
	st2 := eng.Stats()
	if st2.LargePackets == 0 || st2.Frames < st2.LargePackets*2 || st2.PartialsCompleted == 0 {
		t.Errorf("soft offload counters: %+v", st2)
	}
}
