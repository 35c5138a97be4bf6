package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// mediaFileSize is the size of the file the kernel's curl downloads.
const mediaFileSize = 256 << 20

// writeMediaFile writes size pseudo-random bytes to path and returns their
// SHA-256 in hex.
func writeMediaFile(t *testing.T, path string, size int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= len(buf) {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := r.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		chunk := buf[:min(len(buf), left)]
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// kernelCounters reads the namespace's IP counters with nstat (absolute
// values, its history file left alone).
func kernelCounters(t *testing.T, ns *netnstest.Namespace) map[string]uint64 {
	t.Helper()
	out, err := ns.Exec("nstat", "-asz")
	if err != nil {
		t.Fatalf("nstat: %v: %s", err, out)
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

// download fetches url with curl inside ns (with more curl arguments, e.g.
// a range) and returns the SHA-256 of what arrived.
func download(t *testing.T, ns *netnstest.Namespace, url string, curlArgs ...string) string {
	t.Helper()
	out, err := ns.Exec("sh", "-c", "curl -sS --fail --max-time 120 "+strings.Join(curlArgs, " ")+" "+url+" | sha256sum")
	if err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, out)
	}
	return strings.Fields(out)[0]
}

// TestServeHTTPWithTCPOffload: `serve --http-root` with --tcp-offload vnet,
// the Linux kernel's curl and ffmpeg as clients in a network namespace.
func TestServeHTTPWithTCPOffload(t *testing.T) {
	netnstest.RequireTUN(t)
	netnstest.RequireTools(t, "ping", "curl", "ffmpeg", "nstat", "sha256sum")
	dir := t.TempDir()
	sum := writeMediaFile(t, filepath.Join(dir, "media.bin"), mediaFileSize)
	// Under loss (and over IPv6), the first 32 MiB: some 500 large
	// packets, about 5 of them lost at 1%. A lost 64 KB packet is a burst
	// of 45 segments, which netstack may take a few retransmission
	// timeouts to repair.
	const lossyBytes = 32 << 20
	lossySum := func() string {
		f, err := os.Open(filepath.Join(dir, "media.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, lossyBytes)
		if _, err := io.ReadFull(f, b); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}()
	lossyRange := fmt.Sprintf("-r 0-%d", lossyBytes-1)
	// A clip with its index (moov) at the end, as a plain encode writes it:
	// ffmpeg has to seek to it with a Range request before it can play.
	clip := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=5:size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=5", "-c:v", "mpeg4", "-c:a", "aac", "-shortest", filepath.Join(dir, "clip.mp4"))
	if out, err := clip.CombinedOutput(); err != nil {
		t.Fatalf("generating the clip: %v: %s", err, out)
	}
	ns := netnstest.NewNamespace(t)
	serveIn(t, ns, "mss7", "--http-root", dir, "--tcp-offload", "vnet")
	base := "http://" + netnstest.StackV4.Addr().String()

	t.Run("download", func(t *testing.T) {
		before := kernelCounters(t, ns)
		if got := download(t, ns, base+"/media.bin"); got != sum {
			t.Fatalf("sha256 of the download %s, want %s", got, sum)
		}
		after := kernelCounters(t, ns)
		packets := after["IpInReceives"] - before["IpInReceives"]
		octets := after["IpExtInOctets"] - before["IpExtInOctets"]
		if packets == 0 {
			t.Fatal("nstat counted no IP packets received")
		}
		// With vnet the kernel takes each large packet whole: far fewer
		// packets than MSS-sized segments, each far larger than the MTU.
		perPacket := octets / packets
		t.Logf("kernel received %d IP packets, %d bytes: %d bytes per packet", packets, octets, perPacket)
		if perPacket <= 1500 || packets > mediaFileSize/1448/4 {
			t.Errorf("kernel received %d IP packets of %d bytes on average for %d bytes: the large packets were split (nstat IpInReceives, IpExtInOctets)", packets, perPacket, mediaFileSize)
		}
	})

	t.Run("download over IPv6", func(t *testing.T) {
		// TCPv6 large packets (virtio-net GSO type TCPV6); netstack's DAD
		// makes its IPv6 address usable after about a second.
		ns.WaitPing(netnstest.StackV6.Addr())
		before := kernelCounters(t, ns)
		url := "http://[" + netnstest.StackV6.Addr().String() + "]/media.bin"
		if got := download(t, ns, url, "-g", lossyRange); got != lossySum {
			t.Fatalf("sha256 of the IPv6 download %s, want %s", got, lossySum)
		}
		after := kernelCounters(t, ns)
		packets := after["Ip6InReceives"] - before["Ip6InReceives"]
		octets := after["Ip6InOctets"] - before["Ip6InOctets"]
		if packets == 0 || octets/packets <= 1500 {
			t.Errorf("kernel received %d IPv6 packets for %d bytes: the large packets were split (nstat Ip6InReceives, Ip6InOctets)", packets, octets)
		}
	})

	t.Run("range", func(t *testing.T) {
		f, err := os.ReadFile(filepath.Join(dir, "media.bin"))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct {
			spec       string
			start, end int
		}{
			{"0-0", 0, 1},
			{"1000-1999", 1000, 2000},
			{"100000000-100999999", 100000000, 101000000},
			{"-4096", mediaFileSize - 4096, mediaFileSize},
			{"268435000-", 268435000, mediaFileSize},
		} {
			out, err := ns.ExecInput(nil, "curl", "-sS", "--fail", "-r", r.spec, base+"/media.bin")
			if err != nil {
				t.Fatalf("curl -r %s: %v", r.spec, err)
			}
			if !bytes.Equal([]byte(out), f[r.start:r.end]) {
				t.Errorf("Range %s: got %d bytes, want bytes [%d, %d) of the file", r.spec, len(out), r.start, r.end)
			}
		}
	})

	t.Run("ffmpeg", func(t *testing.T) {
		out, err := ns.ExecInput(nil, "ffmpeg", "-nostdin", "-v", "error", "-i", base+"/clip.mp4", "-f", "null", "-progress", "pipe:1", "-")
		if err != nil {
			t.Fatalf("ffmpeg: %v", err)
		}
		// -progress ends with the final counts and progress=end.
		if !strings.Contains(out, "frame=125\n") || !strings.HasSuffix(strings.TrimSpace(out), "progress=end") {
			t.Errorf("ffmpeg did not play the 125 frames to the end:\n%s", out)
		}
	})

	t.Run("netem loss and reordering", func(t *testing.T) {
		// netem on the kernel's end of the TAP: 1% of what the kernel sends
		// (requests, ACKs) is lost, a quarter is held back and reordered.
		out, err := ns.Exec("tc", "qdisc", "add", "dev", "mss7", "root", "netem", "loss", "1%", "delay", "1ms", "reorder", "25%", "50%")
		if err != nil {
			if _, lookErr := exec.LookPath("tc"); lookErr != nil || strings.Contains(out, "Specified qdisc kind is unknown") || strings.Contains(out, "Unknown qdisc") {
				t.Skipf("netem is not available here (this kernel lacks CONFIG_NET_SCH_NETEM, or tc is missing): %v: %s", err, strings.TrimSpace(out))
			}
			t.Fatalf("tc qdisc add netem: %v: %s", err, out)
		}
		defer ns.Exec("tc", "qdisc", "del", "dev", "mss7", "root")
		if got := download(t, ns, base+"/media.bin", lossyRange); got != lossySum {
			t.Fatalf("with netem loss and reordering: sha256 %s, want %s", got, lossySum)
		}
	})

	t.Run("ingress loss", func(t *testing.T) {
		// The kernel drops 1% of the TCP packets the stack sends it, at
		// the TAP's ingress (nftables; with vnet each is a large packet, so
		// whole bursts go), and the download is still exact: netstack
		// retransmits through the same offload path.
		netnstest.RequireTools(t, "nft")
		rules := fmt.Sprintf(`table netdev msloss {
	chain in {
		type filter hook ingress device %q priority 0; policy accept;
		meta l4proto tcp numgen random mod 100 < 1 counter drop
	}
}
`, "mss7")
		if out, err := ns.ExecInput([]byte(rules), "nft", "-f", "-"); err != nil {
			t.Fatalf("nft: %v: %s", err, out)
		}
		defer ns.Exec("nft", "delete", "table", "netdev", "msloss")
		// Until something was dropped (a download of 32 MiB loses none
		// about once in 200).
		for try := 1; ; try++ {
			if got := download(t, ns, base+"/media.bin", lossyRange); got != lossySum {
				t.Fatalf("with 1%% ingress loss: sha256 %s, want %s", got, lossySum)
			}
			out, err := ns.Exec("nft", "list", "table", "netdev", "msloss")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "counter packets 0 ") {
				break
			}
			if try == 3 {
				t.Fatalf("the rule dropped nothing in %d downloads:\n%s", try, out)
			}
		}
	})
}
