package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func runVersion(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("version", commandHelp{}, stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	gvisor := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "gvisor.dev/gvisor" {
				gvisor = d.Version
			}
		}
	}
	fmt.Fprintf(stdout, "mediastack %s (%s, gvisor %s)\n", version, runtime.Version(), gvisor)
	return nil
}
