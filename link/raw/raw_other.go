//go:build !linux

package raw

import (
	"errors"
	"runtime"

	"gvisor.dev/gvisor/pkg/tcpip"
)

var errNeedsLinux = errors.New("raw: AF_PACKET needs Linux (this is " + runtime.GOOS + "); use link/sim, or run on Linux")

func openSocket(string, tcpip.LinkAddress, *DeviceStats, bool) (device, tcpip.LinkAddress, uint32, error) {
	return nil, "", 0, errNeedsLinux
}
