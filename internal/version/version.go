// Package version tells which Lifeline this is, from the build information that the Go toolchain puts in every
// binary: the module version (set by `go install ...@vX`), the VCS commit and time (set by `go build` in a git
// checkout), and the Go version.
package version

import (
	"runtime/debug"
	"strings"
)

// Override is set at build time by packagers that know better than the build information:
// -ldflags "-X github.com/lifeline-sre/lifeline/internal/version.Override=v1.2.3".
var Override string

// Info is what a binary knows about its own build.
type Info struct {
	Version   string `json:"version"`          // v1.2.3, or "devel" for a build from a checkout
	Commit    string `json:"commit,omitempty"` // full VCS revision, "" when the build did not record it
	Time      string `json:"commit_time,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a checkout with uncommitted changes
	GoVersion string `json:"go_version"`
	Module    string `json:"module,omitempty"`
}

// Get reads the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: orDevel(Override)}
	}
	return fromBuildInfo(bi, Override)
}

func fromBuildInfo(bi *debug.BuildInfo, override string) Info {
	in := Info{GoVersion: bi.GoVersion, Module: bi.Main.Path}
	v := bi.Main.Version
	if v == "(devel)" {
		v = ""
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	if override != "" {
		v = override
	}
	in.Version = orDevel(v)
	return in
}

func orDevel(v string) string {
	if v == "" {
		return "devel"
	}
	return v
}

// String is the one-line form: "lifeline v1.2.3 (commit 0123abcd, 2026-12-06T10:00:00Z, go1.26.8)".
func (in Info) String() string {
	var b strings.Builder
	b.WriteString("lifeline " + in.Version)
	var parts []string
	if in.Commit != "" {
		c := in.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if in.Modified {
			c += "+modified"
		}
		parts = append(parts, "commit "+c)
	}
	if in.Time != "" {
		parts = append(parts, in.Time)
	}
	if in.GoVersion != "" {
		parts = append(parts, in.GoVersion)
	}
	if len(parts) > 0 {
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}
