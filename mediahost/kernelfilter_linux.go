package mediahost

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// nftCommand runs nft with CAP_NET_ADMIN passed on as an ambient
// capability: a binary given its capabilities with setcap (not root) would
// otherwise start nft without them.
func nftCommand(args ...string) *exec.Cmd {
	cmd := exec.Command("nft", args...)
	if hasCapability(unix.CAP_NET_ADMIN) {
		cmd.SysProcAttr = &syscall.SysProcAttr{AmbientCaps: []uintptr{unix.CAP_NET_ADMIN}}
	}
	return cmd
}

// hasCapability reports whether c is in the process's permitted set, which
// an ambient capability needs.
func hasCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Permitted&(1<<(c%32)) != 0
}
