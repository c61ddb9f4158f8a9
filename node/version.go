package node

import (
	"runtime"
	"runtime/debug"
	"time"

	"meterupd/localapi"
)

// version and commit are set at build time when the builder knows them:
//
//	go build -ldflags "-X meterupd/node.version=1.2.0 -X meterupd/node.commit=abc123"
//
// Otherwise they come from the Go toolchain's build information (the
// module version, the VCS revision of a build in a git work tree).
var version, commit string

// built is the build time (RFC 3339), set at build time like version:
//
//	-ldflags "-X meterupd/node.built=2026-11-30T00:00:00Z"
var built string

// BuildTime is when this meterupd was built: the -X built time, else the
// time of the VCS commit it was built from, else zero (unknown). A clock
// that reads earlier is not valid (agent.Options.NotBefore): the agent
// cannot run before it was built.
func BuildTime() time.Time {
	if t, err := time.Parse(time.RFC3339, built); err == nil {
		return t
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Time{}
}

// Version returns this meterupd's version, commit and Go version.
func Version() localapi.VersionInfo {
	v := localapi.VersionInfo{Version: version, Commit: commit, Go: runtime.Version(), Proto: localapi.Proto}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && v.Commit != "" && commit == "" {
			v.Commit += "+dirty"
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}
