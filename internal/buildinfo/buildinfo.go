// Package buildinfo says which mediastack a binary is: the module's
// version, the commit it was built from, the Go toolchain and the gVisor
// (netstack) pseudo-version, all read from the build information the Go
// toolchain embeds (runtime/debug.ReadBuildInfo). `mediastack version`
// prints it, `serve` logs it at start, and metrics exports it as the
// mediastack_build_info gauge.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Module and GVisor are the module paths looked up in the build info.
const (
	Module = "github.com/mediastack/mediastack"
	GVisor = "gvisor.dev/gvisor"
)

// Version, when not empty, overrides the module version the build info
// holds (which is "(devel)" for go run, go test, or a build outside
// version control). The mediastack command sets it from its own
// main.version, which BUILD.md sets with -ldflags "-X main.version=...".
var Version string

// Info identifies a build.
type Info struct {
	// Version is mediastack's module version: Version if set at link
	// time, else the build info's (a tag, a pseudo-version, or "(devel)").
	Version string
	// Commit is the VCS revision mediastack was built from, with
	// "-modified" when the work tree had uncommitted changes; "unknown"
	// when mediastack is a dependency or was built without VCS
	// information (go run, go test, -buildvcs=false).
	Commit string
	// GoVersion is the toolchain's version, e.g. go1.26.8.
	GoVersion string
	// GVisor is gVisor's pseudo-version.
	GVisor string
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return FromBuildInfo(bi, Version)
}

// FromBuildInfo returns the Info of bi (nil: nothing known), with version,
// when not empty, as the version.
func FromBuildInfo(bi *debug.BuildInfo, version string) Info {
	info := Info{Version: "unknown", Commit: "unknown", GoVersion: runtime.Version(), GVisor: "unknown"}
	if bi == nil {
		if version != "" {
			info.Version = version
		}
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
	for _, m := range mods {
		v := m.Version
		if m.Replace != nil && m.Replace.Version != "" {
			v = m.Replace.Version // a replacement by another version
		}
		switch {
		case v == "" || v == zeroPseudoVersion:
		case m.Path == Module, m == &bi.Main && ours(m.Path):
			info.Version = v
		case m.Path == GVisor:
			info.GVisor = v
		}
	}
	// The commit is known only when mediastack (the library, or the
	// command's own module) is the main module.
	if ours(bi.Main.Path) {
		var revision string
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if revision != "" {
			info.Commit = revision
			if modified {
				info.Commit += "-modified"
			}
		}
	}
	if version != "" {
		info.Version = version
	}
	return info
}

// zeroPseudoVersion is the version a workspace or a replace by directory
// gives a module of this repository (cmd/mediastack requires the library and
// p2sp so): it says nothing.
const zeroPseudoVersion = "v0.0.0-00010101000000-000000000000"

// ours reports whether path is the library's module or one of the
// repository's nested modules (cmd/mediastack, p2sp).
func ours(path string) bool { return path == Module || strings.HasPrefix(path, Module+"/") }

// String is the one line `mediastack version` prints.
func (i Info) String() string {
	return "mediastack " + i.Version + " (commit " + i.Commit + ", " + i.GoVersion + ", gvisor " + i.GVisor + ")"
}
