package mediahost_test

import (
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"

	"github.com/pion/rtp"

	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/mediaport"
)

// hostOptions are the example's: a TAP device of the given name, the
// stack at 198.51.100.2 and 2001:db8::2, media ports 20000 to 20999.
func hostOptions(tap string) mediahost.Options {
	return mediahost.Options{
		Link: mediahost.Link{Kind: mediahost.TAP, Name: tap},
		Addrs: []netip.Prefix{
			netip.MustParsePrefix("198.51.100.2/24"),
			netip.MustParsePrefix("2001:db8::2/64"),
		},
		Ports: mediaport.Options{PortMin: 20000, PortMax: 20999},
	}
}

// receiveRTP is the example's application: it reads the given number of
// RTP packets from port and prints each one's header.
func receiveRTP(port *mediaport.Port, packets int, w io.Writer) error {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for range packets {
		n, from, err := port.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			return fmt.Errorf("from %v: %w", from, err)
		}
		fmt.Fprintf(w, "RTP from %v: SSRC %#x, sequence %d, timestamp %d, %d bytes of payload type %d\n",
			from, pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, len(pkt.Payload), pkt.PayloadType)
	}
	return nil
}

// An application receives RTP over a TAP device on the fast paths. It needs
// root (CAP_NET_ADMIN) for the TAP; the kernel's end of the TAP is an
// interface like any other:
//
//	ip addr add 198.51.100.1/24 dev media0 && ip link set media0 up
//	ffmpeg -re -f lavfi -i sine -c:a pcm_mulaw -f rtp rtp://198.51.100.2:20000
//
// TestExampleWithTheKernel runs the same code against the kernel in a
// network namespace.
func Example() {
	h, err := mediahost.New(hostOptions("media0"))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	pair, err := h.Ports().OpenPair(20000) // RTP on 20000, RTCP on 20001
	if err != nil {
		log.Fatal(err)
	}
	if err := receiveRTP(pair.RTP, 50, os.Stdout); err != nil {
		log.Fatal(err)
	}
	fmt.Println(pair.RTP.Stats()) // fast or through netstack, and why
}
