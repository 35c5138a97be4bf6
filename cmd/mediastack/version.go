package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/mediastack/mediastack/internal/buildinfo"
)

// version, when set at build time with -ldflags "-X main.version=v1.2.3"
// (BUILD.md), overrides the module version of the build info everywhere it
// shows: `version`, serve's start line, mediastack_build_info.
var version string

func init() {
	if version != "" {
		buildinfo.Version = version
	}
}

func runVersion(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("version", commandHelp{}, stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, buildinfo.Read())
	return nil
}

// logBuild logs which mediastack is starting.
func logBuild(log *slog.Logger) {
	b := buildinfo.Read()
	log.Info("mediastack", "version", b.Version, "commit", b.Commit, "go", b.GoVersion, "gvisor", b.GVisor)
}
