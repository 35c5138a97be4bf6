//go:build !linux

package mediahost

import "os/exec"

// nftCommand runs nft (there is none off Linux; Install reports ErrNoNft).
func nftCommand(args ...string) *exec.Cmd { return exec.Command("nft", args...) }
