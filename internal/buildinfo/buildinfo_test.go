package buildinfo_test

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/buildinfo"
)

const gvisorVersion = "v0.0.0-20260905035102-160fafc42237"

func TestFromBuildInfo(t *testing.T) {
	gvisor := &debug.Module{Path: buildinfo.GVisor, Version: gvisorVersion}
	for _, tc := range []struct {
		name    string
		bi      *debug.BuildInfo
		version string
		want    buildinfo.Info
	}{{
		name: "a go build in a clean checkout",
		bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: buildinfo.Module, Version: "v0.3.0"}, Deps: []*debug.Module{gvisor},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "15db87a0c1"}, {Key: "vcs.modified", Value: "false"}}},
		want: buildinfo.Info{Version: "v0.3.0", Commit: "15db87a0c1", GoVersion: "go1.26.8", GVisor: gvisorVersion},
	}, {
		name: "the command's own module, the library beside it in the workspace",
		bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: buildinfo.Module + "/cmd/mediastack", Version: "v0.4.0"},
			Deps:     []*debug.Module{{Path: buildinfo.Module, Version: "v0.0.0-00010101000000-000000000000"}, gvisor},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "15db87a0c1"}, {Key: "vcs.modified", Value: "false"}}},
		want: buildinfo.Info{Version: "v0.4.0", Commit: "15db87a0c1", GoVersion: "go1.26.8", GVisor: gvisorVersion},
	}, {
		name: "uncommitted changes, and -X main.version",
		bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: buildinfo.Module, Version: "(devel)"}, Deps: []*debug.Module{gvisor},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "15db87a0c1"}, {Key: "vcs.modified", Value: "true"}}},
		version: "v0.3.0-2-g15db87a-dirty",
		want:    buildinfo.Info{Version: "v0.3.0-2-g15db87a-dirty", Commit: "15db87a0c1-modified", GoVersion: "go1.26.8", GVisor: gvisorVersion},
	}, {
		name: "mediastack as a dependency: no commit of its own",
		bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "example.com/app", Version: "v1.0.0"},
			Deps:     []*debug.Module{{Path: buildinfo.Module, Version: "v0.3.0"}, gvisor},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}},
		want: buildinfo.Info{Version: "v0.3.0", Commit: "unknown", GoVersion: "go1.26.8", GVisor: gvisorVersion},
	}, {
		name: "gVisor replaced by another version",
		bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: buildinfo.Module, Version: "(devel)"},
			Deps: []*debug.Module{{Path: buildinfo.GVisor, Version: gvisorVersion, Replace: &debug.Module{Path: buildinfo.GVisor, Version: "v0.0.0-1"}}}},
		want: buildinfo.Info{Version: "(devel)", Commit: "unknown", GoVersion: "go1.26.8", GVisor: "v0.0.0-1"},
	}, {
		name: "no build info",
		want: buildinfo.Info{Version: "unknown", Commit: "unknown", GoVersion: runtime.Version(), GVisor: "unknown"},
	}} {
		if diff := cmp.Diff(tc.want, buildinfo.FromBuildInfo(tc.bi, tc.version)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestReadThisBinary: a test binary has build info: the toolchain, and
// mediastack as the main module. (gVisor is not linked into this one;
// cmd/mediastack's version test checks it.)
func TestReadThisBinary(t *testing.T) {
	got := buildinfo.Read()
	if got.GoVersion != runtime.Version() || got.Version == "unknown" {
		t.Errorf("Read() = %+v, want %s and mediastack's module version", got, runtime.Version())
	}
	want := "mediastack " + got.Version + " (commit " + got.Commit + ", " + runtime.Version() + ", gvisor " + got.GVisor + ")"
	if got.String() != want {
		t.Errorf("String() = %q, want %q", got.String(), want)
	}
}
