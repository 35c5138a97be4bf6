//go:build linux

package mediahost_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/mediaport"
)

const kernelVLAN = 100

// vlanPeer makes a veth pair whose inside end, in ns, carries no address
// of its own but a kernel VLAN sub-interface, VLAN kernelVLAN, with the
// kernel's addresses: the stack must tag and untag to talk to it. It
// returns the outside end, for a raw link.
func vlanPeer(t *testing.T, ns *netnstest.Namespace) string {
	t.Helper()
	veth := ns.AddVeth()
	ns.MustIP("addr", "flush", "dev", veth.Inside)
	ns.AddVLAN(veth.Inside, "vl100", kernelVLAN, netnstest.KernelV4, netnstest.KernelV6)
	return veth.Outside
}

// TestVLANWithTheKernel puts a host on VLAN 100 of a raw link and of a TAP
// whose kernel side is a Linux VLAN sub-interface: ping over IPv4 and
// IPv6, TCP, and RTP both ways on the fast paths, payloads intact.
func TestVLANWithTheKernel(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTools(t, "ping", "nc")
	t.Run("raw", func(t *testing.T) {
		ns := netnstest.NewNamespace(t)
		iface := vlanPeer(t, ns)
		h, err := mediahost.New(vlanHostOptions(mediahost.Link{Kind: mediahost.Raw, Name: iface}))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		checkVLANHost(t, ns, h)
	})
	t.Run("tap", func(t *testing.T) {
		netnstest.RequireTUN(t)
		ns := netnstest.NewNamespace(t)
		name := netnstest.UniqueName("msv")
		var h *mediahost.Host
		// Made inside the namespace: the VLAN sub-interface goes on the
		// TAP's kernel side there.
		if err := ns.Enter(func() (err error) {
			h, err = mediahost.New(vlanHostOptions(mediahost.Link{Kind: mediahost.TAP, Name: name}))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ns.AddVLAN(name, "vl100", kernelVLAN, netnstest.KernelV4, netnstest.KernelV6)
		checkVLANHost(t, ns, h)
	})
}

func vlanHostOptions(l mediahost.Link) mediahost.Options {
	return mediahost.Options{
		Link:  l,
		Addrs: []netip.Prefix{netnstest.StackV4, netnstest.StackV6},
		VLAN:  kernelVLAN,
		Ports: mediaport.Options{PortMin: 20000, PortMax: 20999},
	}
}

// checkVLANHost checks that the kernel in ns reaches h by ping, TCP and
// RTP both ways.
func checkVLANHost(t *testing.T, ns *netnstest.Namespace, h *mediahost.Host) {
	ns.WaitPing(netnstest.StackV4.Addr())
	ns.WaitPing(netnstest.StackV6.Addr())

	t.Run("TCP", func(t *testing.T) {
		ln, err := h.Stack().ListenTCP(netip.AddrPortFrom(netnstest.StackV4.Addr(), 7000))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(hangGuard))
			_, _ = io.Copy(c, c)
		}()
		msg := bytes.Repeat([]byte("tagged tcp "), 1000) // several segments
		out, err := ns.ExecInput(msg, "nc", "-N", "-w", "5", netnstest.StackV4.Addr().String(), "7000")
		if err != nil || out != string(msg) {
			t.Errorf("TCP echo over the VLAN: %d bytes back (want %d), %v", len(out), len(msg), err)
		}
	})

	for _, kernel := range []netip.Addr{netnstest.KernelV4.Addr(), netnstest.KernelV6.Addr()} {
		t.Run("RTP "+kernel.String(), func(t *testing.T) {
			port, err := h.Ports().Open(0)
			if err != nil {
				t.Fatal(err)
			}
			defer port.Close()
			var conn *net.UDPConn
			if err := ns.Enter(func() (err error) {
				conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(kernel, 40000)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			local := netip.AddrPortFrom(netnstest.StackV4.Addr(), port.Port())
			if kernel.Is6() {
				local = netip.AddrPortFrom(netnstest.StackV6.Addr(), port.Port())
			}
			const packets = 20
			payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 172) }

			// Kernel to stack.
			_ = port.SetReadDeadline(time.Now().Add(hangGuard))
			buf := make([]byte, 2048)
			for i := range packets {
				if _, err := conn.WriteToUDPAddrPort(payload(i), local); err != nil {
					t.Fatal(err)
				}
				n, from, err := port.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d from the kernel: %v", i, err)
				}
				if from.Port() != 40000 || !bytes.Equal(buf[:n], payload(i)) {
					t.Fatalf("datagram %d: %d bytes from %v, want %d bytes %#x from port 40000", i, n, from, len(payload(i)), i)
				}
			}
			// Stack to kernel.
			_ = conn.SetReadDeadline(time.Now().Add(hangGuard))
			for i := range packets {
				if _, err := port.WriteToUDPAddrPort(payload(i), netip.AddrPortFrom(kernel, 40000)); err != nil {
					t.Fatal(err)
				}
				n, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d to the kernel: %v", i, err)
				}
				if from.Addr().Unmap() != local.Addr() || !bytes.Equal(buf[:n], payload(i)) {
					t.Fatalf("kernel got %d bytes from %v, want %d bytes %#x from %v", n, from, len(payload(i)), i, local)
				}
			}
			st := port.Stats()
			t.Log(st)
			if st.Receive.FastDelivered != packets {
				t.Errorf("%d of %d datagrams from the kernel came fast: %v", st.Receive.FastDelivered, packets, st)
			}
			// The first send makes the port's entry in the ARP table
			// (policyarp) through netstack; the others go fast.
			if st.Send.Fast < packets-1 {
				t.Errorf("%d of %d datagrams to the kernel went fast, want all but the first: %v", st.Send.Fast, packets, st)
			}
		})
	}
}

// TestVLANBetweenHostsOverTheKernel runs two hosts on VLAN 100 of the two
// ends of a veth pair: every frame crosses the kernel, which moves the tag
// into the AF_PACKET socket's auxiliary data on receive. TCP (netstack's
// lane, soft TCP offload, ARP and NDP first) and datagrams both ways on
// the fast paths over IPv4 and IPv6 get through intact. It needs no
// 8021q module: the kernel's VLAN code in the receive path is always there.
func TestVLANBetweenHostsOverTheKernel(t *testing.T) {
	wire := netnstest.NewVethPair(t)
	open := func(iface string, addrs ...netip.Prefix) *mediahost.Host {
		opts := vlanHostOptions(mediahost.Link{Kind: mediahost.Raw, Name: iface})
		opts.Addrs = addrs
		h, err := mediahost.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	a := open(wire.Outside, netnstest.StackV4, netnstest.StackV6)
	b := open(wire.Inside, netnstest.KernelV4, netnstest.KernelV6)

	t.Run("TCP", func(t *testing.T) {
		ln, err := a.Stack().ListenTCP(netip.AddrPortFrom(netnstest.StackV6.Addr(), 7000))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		msg := bytes.Repeat([]byte("tagged tcp "), 10000) // large packets, cut by the offload
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(hangGuard))
			_, _ = c.Write(msg)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		c, err := b.Stack().DialTCP(ctx, netip.AddrPortFrom(netnstest.StackV6.Addr(), 7000))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(hangGuard))
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("TCP over the VLAN: %d bytes (want %d), %v", len(got), len(msg), err)
		}
	})

	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("datagrams v6=%v", v6), func(t *testing.T) {
			pa, err := a.Ports().Open(0)
			if err != nil {
				t.Fatal(err)
			}
			defer pa.Close()
			pb, err := b.Ports().Open(0)
			if err != nil {
				t.Fatal(err)
			}
			defer pb.Close()
			addrA, addrB := netnstest.StackV4.Addr(), netnstest.KernelV4.Addr()
			if v6 {
				addrA, addrB = netnstest.StackV6.Addr(), netnstest.KernelV6.Addr()
			}
			const packets = 20
			buf := make([]byte, 2048)
			for i := range packets {
				for _, dir := range []struct {
					from, to *mediaport.Port
					dst      netip.Addr
				}{{pa, pb, addrB}, {pb, pa, addrA}} {
					payload := bytes.Repeat([]byte{byte(i)}, 172)
					if _, err := dir.from.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dir.dst, dir.to.Port())); err != nil {
						t.Fatal(err)
					}
					_ = dir.to.SetReadDeadline(time.Now().Add(hangGuard))
					n, _, err := dir.to.ReadFromUDPAddrPort(buf)
					if err != nil || !bytes.Equal(buf[:n], payload) {
						t.Fatalf("datagram %d to port %d: %d bytes, %v", i, dir.to.Port(), n, err)
					}
				}
			}
			for _, p := range []*mediaport.Port{pa, pb} {
				st := p.Stats()
				// Only a's first datagram resolves its peer through
				// netstack (b learnt a's MAC from it); the rest are fast.
				if st.Receive.FastDelivered < packets-1 || st.Send.Fast < packets-1 {
					t.Errorf("want all but one datagram fast both ways: %v", st)
				}
			}
		})
	}
}
