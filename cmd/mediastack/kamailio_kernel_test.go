package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/mediastack/mediastack/internal/kamailiotest"
	"github.com/mediastack/mediastack/internal/netns"
	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/internal/rtpenginetest"
	"github.com/mediastack/mediastack/internal/sipua"
)

// sipHosts is the SIP side of the interop tests, on one of the kernel's
// addresses in the namespace: Kamailio, the two phones and their media
// ports.
type sipHosts struct {
	proxy, callerSIP, calleeSIP netip.AddrPort
	callerMedia, calleeMedia    netip.AddrPort // RTP; RTCP on the next port
}

func sipHostsAt(a netip.Addr) sipHosts {
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	return sipHosts{proxy: at(5060), callerSIP: at(5070), calleeSIP: at(5080), callerMedia: at(40000), calleeMedia: at(42000)}
}

var (
	phoneV4, phoneV6         = netnstest.KernelV4.Addr(), netnstest.KernelV6.Addr()
	sipV4, sipV6             = sipHostsAt(phoneV4), sipHostsAt(phoneV6)
	callerMedia, calleeMedia = sipV4.callerMedia, sipV4.calleeMedia
	ngAddr                   = netip.MustParseAddrPort("127.0.0.1:2223")
	rtpengineV4              = netip.MustParseAddr("203.0.113.1")
	rtpengineV6              = netip.MustParseAddr("2001:db8:1::1")
	rtpengineNG2             = netip.MustParseAddrPort("127.0.0.1:2224")
)

// relayTarget is the media relay a test drives over the ng protocol: the
// real rtpengine (the yardstick) or mediastack serve.
type relayTarget struct {
	name   string
	client *rtpenginetest.Client // rtpengine-ng-client on its ng port
	media  []netip.Addr          // the addresses it writes into SDPs
	// link is the interface in the namespace that media between the
	// phones and the relay crosses, for tshark.
	link string
	// callGone checks, after the call ended, that the relay holds nothing
	// of it: the ng port knows no such call and its ports are free.
	callGone func(t *testing.T, callID string, ports []netip.AddrPort)
	// metrics, if set, scrapes the relay's metrics, to check that its fast
	// paths carried the media.
	metrics func(t *testing.T) map[string]float64
}

// startRtpengine runs the real rtpengine in ns on media addresses of its
// own (on the namespace's loopback, like the phones' address), its ng port
// at ng.
func startRtpengine(t *testing.T, ns *netnstest.Namespace, ng netip.AddrPort, media ...netip.Addr) relayTarget {
	t.Helper()
	for _, a := range media {
		args := []string{"addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo"}
		if a.Is6() {
			args = append(args, "nodad")
		}
		ns.MustIP(args...)
	}
	d := rtpenginetest.Start(t, ns, rtpenginetest.Options{NG: ng, Interfaces: media})
	return relayTarget{
		name: "rtpengine", client: d.Client(), media: media, link: "lo",
		callGone: func(t *testing.T, callID string, ports []netip.AddrPort) {
			netnstest.WaitFor(t, netnstest.StateTimeout, "rtpengine forgetting call "+callID, func() error { return d.Client().UnknownCall(callID) })
			// rtpengine's media sockets are the kernel's: binding them shows
			// they are free.
			for _, p := range ports {
				netnstest.WaitFor(t, netnstest.StateTimeout, "rtpengine releasing "+p.String(), func() error {
					c, err := listenUDPErr(ns, p)
					if err != nil {
						return fmt.Errorf("%w: %w", err, netnstest.ErrNotYet)
					}
					return c.Close()
				})
			}
		},
	}
}

// listenUDPErr opens a kernel UDP socket in ns bound to addr.
func listenUDPErr(ns *netnstest.Namespace, addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := ns.Enter(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	return c, err
}

// withPhoneAddresses gives the namespace's loopback the phones' addresses,
// for a relay that, unlike mediastack on its TAP, needs no link to them.
func withPhoneAddresses(ns *netnstest.Namespace) {
	ns.MustIP("addr", "add", netnstest.KernelV4.String(), "dev", "lo")
	ns.MustIP("addr", "add", netnstest.KernelV6.String(), "dev", "lo", "nodad")
}

// rtpCapture is tshark reading, as they cross the link, the RTP and RTCP
// datagrams to and from the phones' media ports.
type rtpCapture struct {
	p *netnstest.Process
}

// The phones' media ports, decoded as RTP and RTCP.
var capturePorts = []struct {
	port  uint16
	proto string
}{
	{sipV4.callerMedia.Port(), "rtp"}, {sipV4.callerMedia.Port() + 1, "rtcp"},
	{sipV4.calleeMedia.Port(), "rtp"}, {sipV4.calleeMedia.Port() + 1, "rtcp"},
}

func startCapture(t *testing.T, ns *netnstest.Namespace, link string) *rtpCapture {
	t.Helper()
	args := []string{"tshark", "-l", "-n", "-i", link, "-f",
		fmt.Sprintf("udp and (portrange %d-%d or portrange %d-%d)", sipV4.callerMedia.Port(), sipV4.callerMedia.Port()+1, sipV4.calleeMedia.Port(), sipV4.calleeMedia.Port()+1)}
	for _, c := range capturePorts {
		args = append(args, "-d", fmt.Sprintf("udp.port==%d,%s", c.port, c.proto))
	}
	args = append(args, "-T", "fields", "-E", "separator=|", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "rtp.ssrc", "-e", "rtp.seq", "-e", "rtcp.pt")
	c := &rtpCapture{p: ns.Start(args...)}
	netnstest.WaitFor(t, netnstest.StateTimeout, "tshark capturing on "+link, func() error {
		if !strings.Contains(c.p.Output(), "Capturing on") {
			return fmt.Errorf("tshark said %q: %w", c.p.Output(), netnstest.ErrNotYet)
		}
		return nil
	})
	return c
}

// flow counts what tshark saw from one port to another.
type flow struct {
	rtp      map[uint16]bool // distinct sequence numbers of the SSRC asked for
	rtcpSRs  int             // RTCP compound packets with a sender report (PT 200)
	rtcpPkts int
}

// flow returns what the capture saw so far from port src to port dst: RTP
// of the SSRC ssrc, and RTCP.
func (c *rtpCapture) flow(src, dst uint16, ssrc uint32) flow {
	f := flow{rtp: map[uint16]bool{}}
	for _, line := range strings.Split(c.p.Output(), "\n") {
		fields := strings.Split(line, "|")
		if len(fields) != 5 || fields[0] != strconv.Itoa(int(src)) || fields[1] != strconv.Itoa(int(dst)) {
			continue
		}
		if fields[4] != "" {
			f.rtcpPkts++
			if strings.Contains(","+fields[4]+",", ",200,") {
				f.rtcpSRs++
			}
			continue
		}
		got, err := strconv.ParseUint(strings.TrimPrefix(fields[2], "0x"), 16, 32)
		seq, err2 := strconv.Atoi(fields[3])
		if err == nil && err2 == nil && uint32(got) == ssrc {
			f.rtp[uint16(seq)] = true
		}
	}
	return f
}

// ffmpegRTP starts ffmpeg sending seconds of a G.711 µ-law tone as RTP
// from the phone's media ports (RTP from, RTCP from the next port) to the
// relay's (RTP to, RTCP to rtcp), in real time, with ffmpeg's RTCP sender
// reports.
func ffmpegRTP(ns *netnstest.Namespace, from, to, rtcp netip.AddrPort, ssrc uint32, seconds int) *netnstest.Process {
	host := to.Addr().String()
	if to.Addr().Is6() {
		host = "[" + host + "]"
	}
	return ns.Start("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=8000:samples_per_frame=160:duration=%d", seconds),
		"-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1", "-f", "rtp", "-ssrc", strconv.FormatUint(uint64(ssrc), 10),
		fmt.Sprintf("rtp://%s:%d?localaddr=%s&localrtpport=%d&localrtcpport=%d&rtcpport=%d", host, to.Port(), from.Addr(), from.Port(), from.Port()+1, rtcp.Port()))
}

// logSDP writes an SDP as it was before and after the relay rewrote it
// into the test's log: the interop transcript.
func logSDP(t *testing.T, what string, before, after []byte) {
	t.Helper()
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimRight(string(b), "\r\n"), "\r\n", "\n    ")
	}
	t.Logf("%s, as sent:\n%s\n%s, as the relay rewrote it:\n%s", what, indent(before), what, indent(after))
}

// TestKamailioCallThroughRtpengine: the interop harness against the real
// rtpengine: Kamailio proxies a call between two SIP phones, driving
// rtpengine over the ng protocol; ffmpeg streams G.711 both ways through
// it, with RTCP; after the BYE the call and its ports are gone. Over IPv4,
// then IPv6.
func TestKamailioCallThroughRtpengine(t *testing.T) {
	ns := kamailioNamespace(t)
	withPhoneAddresses(ns)
	kamailioCalls(t, ns, startRtpengine(t, ns, ngAddr, rtpengineV4, rtpengineV6))
}

// kamailioCalls starts Kamailio on both families and puts a call through
// it and the relay over each.
func kamailioCalls(t *testing.T, ns *netnstest.Namespace, relay relayTarget) {
	kamailiotest.Start(t, ns, kamailiotest.Options{SIP: []netip.AddrPort{sipV4.proxy, sipV6.proxy}, NG: relay.client.NG})
	for _, hosts := range []sipHosts{sipV4, sipV6} {
		name := "IPv4"
		if hosts.proxy.Addr().Is6() {
			name = "IPv6"
		}
		t.Run(name, func(t *testing.T) { kamailioCall(t, ns, relay, hosts) })
	}
}

// kamailioNamespace returns a namespace for a Kamailio call test, having
// checked every tool it runs.
func kamailioNamespace(t *testing.T) *netnstest.Namespace {
	t.Helper()
	netnstest.RequireTools(t, "kamailio", "rtpengine", "rtpengine-ng-client", "ffmpeg", "tshark", "ping")
	return netnstest.NewNamespace(t)
}

// kamailioCall puts a call through Kamailio and the relay and checks what
// the phones receive.
func kamailioCall(t *testing.T, ns *netnstest.Namespace, relay relayTarget, hosts sipHosts) {
	capture := startCapture(t, ns, relay.link)
	callerMedia, calleeMedia := hosts.callerMedia, hosts.calleeMedia
	network, relayAddr := "udp4", relay.media[0]
	if hosts.proxy.Addr().Is6() {
		network, relayAddr = "udp6", relay.media[1]
	}

	ctx, cancel := context.WithTimeout(context.Background(), netnstest.StateTimeout)
	defer cancel()
	caller := sipua.New(listenUDP(t, ns, network, hosts.callerSIP.String()), hosts.proxy, "alice")
	callee := sipua.New(listenUDP(t, ns, network, hosts.calleeSIP.String()), hosts.proxy, "bob")
	type answered struct {
		d   *sipua.Dialog
		err error
	}
	calleeDone := make(chan answered, 1)
	go func() {
		d, err := callee.Answer(ctx, func([]byte) ([]byte, error) { return sipua.AudioSDP(calleeMedia, 2002), nil })
		calleeDone <- answered{d, err}
	}()
	callerDialog, err := caller.Call(ctx, "sip:bob@"+hosts.calleeSIP.String(), sipua.AudioSDP(callerMedia, 1001))
	if err != nil {
		t.Fatalf("calling: %v", err)
	}
	a := <-calleeDone
	if a.err != nil {
		t.Fatalf("answering: %v", a.err)
	}
	calleeDialog := a.d
	logSDP(t, "The caller's offer (INVITE)", callerDialog.LocalSDP, calleeDialog.RemoteSDP)
	logSDP(t, "The callee's answer (200 OK)", calleeDialog.LocalSDP, callerDialog.RemoteSDP)

	// Where each phone must send: what the relay wrote into the SDP the
	// phone received.
	toCallee, err := sipua.ParseMedia(calleeDialog.RemoteSDP) // the callee sends here
	if err != nil {
		t.Fatal(err)
	}
	toCaller, err := sipua.ParseMedia(callerDialog.RemoteSDP) // the caller sends here
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []sipua.Media{toCallee[0], toCaller[0]} {
		if len(toCallee) != 1 || len(toCaller) != 1 || m.Type != "audio" || m.RTP.Addr() != relayAddr || m.Mux || m.RTCP.Port() != m.RTP.Port()+1 || m.RTP.Port()%2 != 0 {
			t.Fatalf("the relay's SDP asks for media at %+v and %+v: want one audio stream each, at %v, on an even RTP port with RTCP on the next", toCallee, toCaller, relayAddr)
		}
	}

	var before map[string]float64
	if relay.metrics != nil {
		before = relay.metrics(t)
	}
	// Five seconds of audio each way at 50 packets/s, at the same time.
	const seconds, callerSSRC, calleeSSRC = 5, 0x0a11ce, 0x0b0b
	callerFF := ffmpegRTP(ns, callerMedia, toCaller[0].RTP, toCaller[0].RTCP, callerSSRC, seconds)
	calleeFF := ffmpegRTP(ns, calleeMedia, toCallee[0].RTP, toCallee[0].RTCP, calleeSSRC, seconds)
	for _, ff := range []*netnstest.Process{callerFF, calleeFF} {
		if out, err := ff.Wait(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	}
	type direction struct {
		name           string
		ssrc           uint32
		from, to       netip.AddrPort // the phones
		relayIn, relay sipua.Media    // where the sender sent, where the receiver hears from
	}
	directions := []direction{
		{"caller → callee", callerSSRC, callerMedia, calleeMedia, toCaller[0], toCallee[0]},
		{"callee → caller", calleeSSRC, calleeMedia, callerMedia, toCallee[0], toCaller[0]},
	}
	// What the capture saw each way: sent to the relay, received from it.
	flows := func(dir direction) (sent, got, sentRTCP, gotRTCP flow) {
		return capture.flow(dir.from.Port(), dir.relayIn.RTP.Port(), dir.ssrc),
			capture.flow(dir.relay.RTP.Port(), dir.to.Port(), dir.ssrc),
			capture.flow(dir.from.Port()+1, dir.relayIn.RTCP.Port(), dir.ssrc),
			capture.flow(dir.relay.RTCP.Port(), dir.to.Port()+1, dir.ssrc)
	}
	// tshark, decoding as it captures, lags behind on a loaded machine:
	// wait until it has seen all ffmpeg sent (seconds × 50 packets of 20 ms)
	// and the relay forwarded it. If some never arrives, the checks below
	// say what is missing.
	_ = netns.WaitFor(netnstest.StateTimeout, "tshark seeing every RTP and RTCP packet sent, and relayed", func() error {
		for _, dir := range directions {
			if sent, got, sentRTCP, gotRTCP := flows(dir); len(sent.rtp) < seconds*50 || len(got.rtp) < len(sent.rtp) || gotRTCP.rtcpPkts < sentRTCP.rtcpPkts {
				return netnstest.ErrNotYet
			}
		}
		return nil
	})
	packets, rtpSent, rtcpSent := 0, 0, 0
	for _, dir := range directions {
		sent, got, sentRTCP, gotRTCP := flows(dir)
		rtpSent += len(sent.rtp)
		rtcpSent += sentRTCP.rtcpPkts
		t.Logf("%s: %d RTP packets sent, %d received; %d RTCP packets (%d with a sender report) sent, %d (%d) received",
			dir.name, len(sent.rtp), len(got.rtp), sentRTCP.rtcpPkts, sentRTCP.rtcpSRs, gotRTCP.rtcpPkts, gotRTCP.rtcpSRs)
		if len(sent.rtp) != seconds*50 {
			t.Errorf("%s: ffmpeg sent %d RTP packets, want %d", dir.name, len(sent.rtp), seconds*50)
		}
		if len(got.rtp)*100 < len(sent.rtp)*99 {
			t.Errorf("%s: %d of %d RTP packets arrived, want at least 99%%", dir.name, len(got.rtp), len(sent.rtp))
		}
		if gotRTCP.rtcpSRs == 0 || gotRTCP.rtcpSRs < sentRTCP.rtcpSRs {
			t.Errorf("%s: %d of ffmpeg's %d RTCP sender reports arrived", dir.name, gotRTCP.rtcpSRs, sentRTCP.rtcpSRs)
		}
		packets += len(sent.rtp) + sentRTCP.rtcpPkts
	}
	if relay.metrics != nil {
		fastPaths(t, before, relay.metrics(t), packets)
	}
	callQuality(t, relay.client, callerDialog.CallID(), rtpSent, rtcpSent)

	byeDone := make(chan error, 1)
	go func() { byeDone <- calleeDialog.AwaitBye(ctx) }()
	if err := callerDialog.Bye(ctx); err != nil {
		t.Fatalf("hanging up: %v", err)
	}
	if err := <-byeDone; err != nil {
		t.Fatalf("the callee's end of the BYE: %v", err)
	}
	relay.callGone(t, callerDialog.CallID(), []netip.AddrPort{toCaller[0].RTP, toCaller[0].RTCP, toCallee[0].RTP, toCallee[0].RTCP})
}

// startMediastack runs `mediastack serve` in ns on the TAP tapName as the
// relay under test: its ng port at ng, media on the stack's addresses,
// the control API and metrics on the namespace's loopback.
func startMediastack(t *testing.T, ns *netnstest.Namespace, tapName string, ng netip.AddrPort) relayTarget {
	t.Helper()
	netnstest.RequireTUN(t)
	p, c := sidecarIn(t, ns, tapName, "--listen-ng", ng.String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mediastack serve's log:\n%s", p.Output())
		}
	})
	// The stack's IPv6 address needs netstack's DAD to finish.
	ns.WaitPing(netnstest.StackV6.Addr())
	client := &rtpenginetest.Client{NS: ns, NG: ng}
	rtpenginetest.WaitPing(t, client, p.Output)
	return relayTarget{
		name: "mediastack", client: client, media: []netip.Addr{netnstest.StackV4.Addr(), netnstest.StackV6.Addr()}, link: tapName,
		callGone: func(t *testing.T, callID string, _ []netip.AddrPort) {
			netnstest.WaitFor(t, netnstest.StateTimeout, "mediastack forgetting call "+callID, func() error { return client.UnknownCall(callID) })
			// The call's relays are gone, so their ports are free.
			if code, body := api(t, c, "GET", "/v1/relays", ""); code != 200 || strings.Contains(body, `"id"`) {
				t.Errorf("relays left after the call: %d %s", code, body)
			}
		},
		metrics: func(t *testing.T) map[string]float64 { return scrape(t, c) },
	}
}

// TestKamailioCall: Kamailio proxies a call between two SIP phones and
// drives mediastack over the ng protocol (offer on INVITE, answer on 200
// OK, delete on BYE); ffmpeg streams G.711 both ways through mediastack,
// with RTCP, at least 99% of it arriving, on the fast paths; after the BYE
// the call and its relays are gone. Over IPv4, then IPv6.
func TestKamailioCall(t *testing.T) {
	ns := kamailioNamespace(t)
	kamailioCalls(t, ns, startMediastack(t, ns, "mskam", ngAddr))
}

// callQuality asks the relay, over ng, for the call's counters and quality
// figures, logs them for the closing note, and checks that the totals count
// the media relayed: at least 99% of the RTP sent, and the RTCP.
func callQuality(t *testing.T, c *rtpenginetest.Client, callID string, rtpSent, rtcpSent int) {
	t.Helper()
	r, err := c.Query(callID)
	if err != nil {
		t.Fatalf("query: %v\n%s", err, r.Output)
	}
	t.Logf("query %s after the media:\n%s", callID, r.Output)
	count := func(proto string) int {
		n, _ := strconv.Atoi(fmt.Sprint(dict(r.Dict, "totals", proto, "packets")))
		return n
	}
	if rtp, rtcp := count("RTP"), count("RTCP"); rtp*100 < rtpSent*99 || rtcp < rtcpSent {
		t.Errorf("query: totals count %d RTP and %d RTCP packets, want at least 99%% of the %d RTP and the %d RTCP packets sent", rtp, rtcp, rtpSent, rtcpSent)
	}
}

// fastPaths checks, from the relay's metrics before and after a call's
// media, that its fast paths carried at least 99% of the packets sent to it
// both ways. Out, the first datagram to each of the four phone ports may go
// through netstack (no ARP or NDP entry yet).
func fastPaths(t *testing.T, before, after map[string]float64, packets int) {
	t.Helper()
	delta := func(name string) float64 { return after[name] - before[name] }
	rx, tx := delta("mediastack_fast_rx_packets_total"), delta("mediastack_fast_tx_packets_total")
	t.Logf("the relay's fast paths: %v packets in, %v out (of %d sent to it); %v through netstack, %v dropped on the way in",
		rx, tx, packets, fallbackTotal(after)-fallbackTotal(before), rxDropTotal(after)-rxDropTotal(before))
	if rx*100 < float64(packets*99) || tx*100 < float64((packets-4)*99) {
		t.Errorf("the fast paths carried %v packets in and %v out of the %d relayed, want at least 99%%", rx, tx, packets)
	}
}
