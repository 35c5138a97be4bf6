//go:build !linux

package tap

import (
	"errors"
	"runtime"
)

var errNeedsLinux = errors.New("tap: TAP needs Linux (this is " + runtime.GOOS + "); use link/sim, or run on Linux")

func openDeviceMode(string, uint32, *DeviceStats, bool) (device, string, error) {
	return nil, "", errNeedsLinux
}
