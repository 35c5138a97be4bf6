package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// hostSharingWire makes two namespaces joined by a veth pair: in host, the
// kernel holds the stack's address (StackV4) on hostEnd, the interface
// serve's raw link binds to, as on a host whose own address a sidecar
// takes; in peer, the kernel is the media peer (KernelV4).
func hostSharingWire(t *testing.T) (host, peer *netnstest.Namespace, hostEnd string) {
	t.Helper()
	return wireBetween(t, netnstest.StackV4)
}

// wireBetween makes two namespaces joined by a veth pair, both ends up:
// hostEnd in host with hostAddrs, for serve's raw link; in peer, the
// kernel is the media peer (KernelV4).
func wireBetween(t *testing.T, hostAddrs ...netip.Prefix) (host, peer *netnstest.Namespace, hostEnd string) {
	t.Helper()
	host, peer = netnstest.NewNamespace(t), netnstest.NewNamespace(t)
	base := netnstest.UniqueName("msh")
	hostEnd, peerEnd := base+"h", base+"p"
	netnstest.MustRun(t, "ip", "link", "add", "dev", hostEnd, "netns", host.Name, "type", "veth", "peer", "name", peerEnd, "netns", peer.Name)
	t.Cleanup(func() { host.IP("link", "del", "dev", hostEnd) }) // takes peerEnd along
	for _, a := range hostAddrs {
		host.MustIP("addr", "add", a.String(), "dev", hostEnd)
	}
	host.MustIP("link", "set", "dev", hostEnd, "up")
	peer.MustIP("addr", "add", netnstest.KernelV4.String(), "dev", peerEnd)
	peer.MustIP("link", "set", "dev", peerEnd, "up")
	netnstest.WaitCarrier(t, host, hostEnd)
	netnstest.WaitCarrier(t, peer, peerEnd)
	return host, peer, hostEnd
}

// waitForLog waits until serve has logged line; serve exiting first fails
// the test.
func waitForLog(t *testing.T, p *netnstest.Process, line string) {
	t.Helper()
	netnstest.WaitFor(t, netnstest.StateTimeout, "serve logging "+line, func() error {
		select {
		case <-p.Done():
			return errors.New("serve exited: " + p.Output())
		default:
		}
		if !strings.Contains(p.Output(), line) {
			return netnstest.ErrNotYet
		}
		return nil
	})
}

// stopServe sends serve SIGTERM and checks that it exits 0 having removed
// its kernel filter.
func stopServe(t *testing.T, p *netnstest.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	log, err := p.Wait()
	if err != nil || !strings.Contains(log, "kernel filter removed") {
		t.Errorf("serve after SIGTERM: exit %v, want 0 and its kernel filter removed; log:\n%s", err, log)
	}
}

func TestServeHostAddressOnRawLink(t *testing.T) {
	netnstest.RequireTools(t, "ping", "socat", "nft")
	host, peer, hostEnd := hostSharingWire(t)
	bin := binary(t)
	stackAddr := netnstest.StackV4.Addr().String()
	table := "mediastack_" + hostEnd

	t.Run("refused", func(t *testing.T) {
		out, err := host.Exec(bin, "serve", "--link", "raw:"+hostEnd, "--addr", netnstest.StackV4.String(), "--echo")
		if err == nil {
			t.Fatalf("serve took the host's own address on %s; output:\n%s", hostEnd, out)
		}
		out = strings.TrimSpace(out)
		for _, want := range []string{stackAddr, hostEnd, "address of its own", "--share-host-address"} {
			if !strings.Contains(out, want) {
				t.Errorf("error %q does not mention %q", out, want)
			}
		}
		if strings.Contains(out, "\n") {
			t.Errorf("want a one-line error, got:\n%s", out)
		}
	})

	t.Run("another MAC", func(t *testing.T) {
		out, err := host.Exec(bin, "serve", "--link", "raw:"+hostEnd, "--addr", netnstest.StackV4.String(),
			"--share-host-address", "--mac", "02:00:5e:00:53:01")
		out = strings.TrimSpace(out)
		if err == nil || !strings.Contains(out, "leave --mac out") || strings.Contains(out, "\n") {
			t.Errorf("--share-host-address with a MAC of its own: %v, want a one-line error saying to leave --mac out; output:\n%s", err, out)
		}
	})

	t.Run("no nft", func(t *testing.T) {
		out, err := host.Exec("env", "PATH=/nonexistent", bin, "serve", "--link", "raw:"+hostEnd, "--addr", netnstest.StackV4.String(),
			"--share-host-address", "--rtp-ports", "20000-20099")
		if err == nil {
			t.Fatalf("serve shared the address without nft; output:\n%s", out)
		}
		for _, want := range []string{"apt-get install nftables", "table inet " + table + " {", "udp dport { 20000-20099 } drop", "icmp type echo-request drop"} {
			if !strings.Contains(out, want) {
				t.Errorf("error does not show %q:\n%s", want, out)
			}
		}
	})

	t.Run("shared", func(t *testing.T) {
		// What a serve killed by SIGKILL leaves behind: the next one
		// replaces it.
		if _, err := host.ExecInput([]byte("table inet "+table+" {\n\tchain stale {\n\t}\n}\n"), "nft", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		p := host.Start(bin, "serve", "--link", "raw:"+hostEnd, "--addr", netnstest.StackV4.String(),
			"--share-host-address", "--rtp-ports", "20000-20099", "--reflect")
		waitForLog(t, p, "media fast paths up")
		out, err := host.Exec("nft", "list", "table", "inet", table)
		if err != nil {
			t.Fatalf("serve runs without its nft table %s: %v\n%s", table, err, out)
		}
		if strings.Contains(out, "stale") || !strings.Contains(out, "udp dport 20000-20099 drop") {
			t.Errorf("serve's nft table %s is not its own:\n%s", table, out)
		}
		// With the kernel's echo requests dropped, a reply is the stack's;
		// it also leaves both ARP caches filled.
		peer.WaitPing(netnstest.StackV4.Addr())

		const datagram = "a media datagram\n"
		out, err = peer.ExecInput([]byte(datagram), "socat", "-t", "3", "-T", "5", "-", "UDP4:"+stackAddr+":20000")
		if err != nil || out != datagram {
			t.Errorf("UDP to the reflector on the shared address: got %q, %v; want exactly %q back", out, err, datagram)
		}
		if strings.Contains(out+fmt.Sprint(err), "Connection refused") {
			t.Errorf("the kernel's port unreachable reached the peer: %q, %v", out, err)
		}
		out, err = peer.Exec("ping", "-c", "5", "-i", "0.2", "-W", "5", stackAddr)
		if err != nil || strings.Contains(out, "DUP!") || !strings.Contains(out, " 0% packet loss") {
			t.Errorf("ping of the shared address: want 5 replies and no DUP!, got %v:\n%s", err, out)
		}

		stopServe(t, p)
		tables, err := host.Exec("nft", "list", "tables")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tables, table) {
			t.Errorf("table %s still there after serve exited:\n%s", table, tables)
		}
	})
}

// TestServeSharesHostAddressWithFileCapabilities runs serve as nobody from
// a copy of the binary given its capabilities with setcap, as BUILD.md
// suggests instead of root: the nft it starts must get CAP_NET_ADMIN too.
func TestServeSharesHostAddressWithFileCapabilities(t *testing.T) {
	netnstest.RequireTools(t, "nft", "setcap", "setpriv")
	host, _, hostEnd := hostSharingWire(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mediastack")
	data, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	netnstest.MustRun(t, "setcap", "cap_net_admin,cap_net_raw+ep", bin)
	table := "mediastack_" + hostEnd
	p := host.Start("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
		bin, "serve", "--link", "raw:"+hostEnd, "--addr", netnstest.StackV4.String(), "--share-host-address", "--echo")
	waitForLog(t, p, "echo service")
	if out, err := host.Exec("nft", "list", "table", "inet", table); err != nil || !strings.Contains(out, "tcp dport 7 drop") {
		t.Errorf("serve as nobody with file capabilities did not load its table: %v\n%s\nserve:\n%s", err, out, p.Output())
	}
	stopServe(t, p)
}

func TestServeRefusesTheTAPKernelsAddress(t *testing.T) {
	netnstest.RequireTUN(t)
	ns := netnstest.NewNamespace(t)
	tapName := netnstest.UniqueName("mst")
	ns.MustIP("tuntap", "add", "dev", tapName, "mode", "tap")
	t.Cleanup(func() { ns.IP("link", "del", "dev", tapName) })
	ns.MustIP("addr", "add", netnstest.StackV4.String(), "dev", tapName)
	bin := binary(t)
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"the kernel's address", nil, []string{netnstest.StackV4.Addr().String(), "tap:" + tapName, "unreachable", "another address"}},
		{"no sharing on a TAP", []string{"--share-host-address"}, []string{"--share-host-address is for raw:IFACE", "an address of its own"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{bin, "serve", "--link", "tap:" + tapName, "--addr", netnstest.StackV4.String()}, tc.extra...)
			out, err := ns.Exec(args...)
			if err == nil {
				t.Fatalf("exit 0, want an error; output:\n%s", out)
			}
			out = strings.TrimSpace(out)
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("error %q does not mention %q", out, want)
				}
			}
			if strings.Contains(out, "\n") {
				t.Errorf("want a one-line error, got:\n%s", out)
			}
		})
	}
}
