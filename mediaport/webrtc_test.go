package mediaport_test

import (
	"log"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/mediastack/mediastack/internal/simlan"
	"github.com/mediastack/mediastack/link/sim"
	"github.com/mediastack/mediastack/mediaport"
)

// newWebRTCAPI hands a media port to Pion WebRTC: the ICE agent's UDP mux
// reads and writes through the port, so STUN, DTLS, SCTP and SRTP all go
// over mediastack's fast paths, and the port's LocalAddr (the NIC's address
// and the port) is the host candidate. Closing the mux closes the port.
func newWebRTCAPI(port *mediaport.Port) (*webrtc.API, *ice.UDPMuxDefault) {
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: port})
	var se webrtc.SettingEngine
	se.SetICEUDPMux(mux)
	// The stack's address is the candidate: no mDNS name, no gathering on
	// the host's own interfaces.
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), mux
}

// A media port as the one UDP socket of a Pion WebRTC peer connection.
func Example_webrtc() {
	var m *mediaport.Manager // mediaport.NewManager(st, ...) on the stack that owns the interface
	port, err := m.Open(0)
	if err != nil {
		log.Fatal(err)
	}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: port})
	defer mux.Close()
	var se webrtc.SettingEngine
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	// ... offer/answer as usual; ICE, DTLS and media go through port.
}

// TestWebRTCConnectsOverMediaPorts: two Pion peer connections, each on a
// media port of its own simulated stack, connect (ICE, DTLS, SCTP) and echo
// a message over a data channel; the traffic takes the fast paths. Pion
// runs on real time, so the simulated clock is driven in step with it.
func TestWebRTCConnectsOverMediaPorts(t *testing.T) {
	l := newSimLAN(t, sim.Impairments{Delay: time.Millisecond}, mediaport.Options{})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				l.Run(time.Millisecond)
			}
		}
	}()
	defer func() { close(stop); <-stopped }()

	pa, pb := simlan.Open(t, l.a.m, 20000), simlan.Open(t, l.b.m, 20000)
	apiA, muxA := newWebRTCAPI(pa)
	defer muxA.Close()
	apiB, muxB := newWebRTCAPI(pb)
	defer muxB.Close()
	pcA, err := apiA.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pcA.Close()
	pcB, err := apiB.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pcB.Close()

	echoed := make(chan string, 1)
	dc, err := pcA.CreateDataChannel("chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { dc.SendText("hello over mediastack") })
	dc.OnMessage(func(msg webrtc.DataChannelMessage) { echoed <- string(msg.Data) })
	pcB.OnDataChannel(func(d *webrtc.DataChannel) {
		d.OnMessage(func(msg webrtc.DataChannelMessage) { d.SendText("echo: " + string(msg.Data)) })
	})

	// Signalling without trickle: each side's description carries its
	// gathered candidates.
	offer, err := pcA.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pcA)
	if err := pcA.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	waitGathered(t, gathered, "A")
	if err := pcB.SetRemoteDescription(*pcA.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := pcB.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(pcB)
	if err := pcB.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	waitGathered(t, gathered, "B")
	if err := pcA.SetRemoteDescription(*pcB.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	for name, sdp := range map[string]string{"A": pcA.LocalDescription().SDP, "B": pcB.LocalDescription().SDP} {
		addr := map[string]string{"A": "198.51.100.1 20000", "B": "198.51.100.2 20000"}[name]
		if !strings.Contains(sdp, addr+" typ host") {
			t.Errorf("%s's description has no host candidate %s:\n%s", name, addr, sdp)
		}
	}

	select {
	case msg := <-echoed:
		if msg != "echo: hello over mediastack" {
			t.Errorf("A received %q", msg)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatalf("no echo; ICE %v / %v, connection %v / %v", pcA.ICEConnectionState(), pcB.ICEConnectionState(), pcA.ConnectionState(), pcB.ConnectionState())
	}
	for name, p := range map[string]*mediaport.Port{"A": pa, "B": pb} {
		st := p.Stats()
		t.Logf("%s's port: received %d fast, %d through netstack; sent %d fast, %d through netstack", name,
			st.Receive.FastDelivered, st.Receive.NetstackDelivered, st.Send.Fast, st.Send.FallbackTotal())
		if st.Receive.FastDelivered == 0 || st.Send.Fast == 0 {
			t.Errorf("%s's port: the connection did not use the fast paths: %+v", name, st)
		}
	}
}

// waitGathered waits for a peer's ICE gathering to complete, failing the
// test after 30 seconds (a hang guard, not a timing assertion).
func waitGathered(t *testing.T, gathered <-chan struct{}, peer string) {
	t.Helper()
	select {
	case <-gathered:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s's ICE gathering did not complete within 30s", peer)
	}
}
