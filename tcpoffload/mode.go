package tcpoffload

import "fmt"

// Mode is how a link sends the large TCP packets netstack hands it.
type Mode uint8

const (
	// Off: the link is not a GSO endpoint; netstack cuts every TCP segment
	// to the MSS itself and walks IP, NIC and link code for each.
	Off Mode = iota
	// Soft: netstack hands over packets of up to 64 KB and the link cuts
	// them into MSS-sized frames from the header template, written with the
	// link's batch write. For links without offload (AF_PACKET, sim).
	Soft
	// Vnet: netstack hands over packets of up to 64 KB and the link writes
	// each once to a TAP opened with IFF_VNET_HDR, with a virtio-net header
	// asking the kernel to segment it (and to fill in the checksum); a local
	// socket receives it unsplit.
	Vnet
)

func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case Soft:
		return "soft"
	case Vnet:
		return "vnet"
	default:
		return fmt.Sprintf("mode(%d)", uint8(m))
	}
}

// ParseMode parses "off", "soft" or "vnet".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "off":
		return Off, nil
	case "soft":
		return Soft, nil
	case "vnet":
		return Vnet, nil
	}
	return Off, fmt.Errorf("tcpoffload: unknown mode %q (want off, soft or vnet)", s)
}
