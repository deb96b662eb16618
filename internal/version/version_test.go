package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

// Build information as `go version -m` prints it (the same text debug.ParseBuildInfo reads), from real builds:
// a checkout with uncommitted changes, `go install ...@v1.4.0`, and a build with -buildvcs=false.
const (
	fromCheckout = "go\tgo1.26.8\npath\tgithub.com/lifeline-sre/lifeline/cmd/lifeline\n" +
		"mod\tgithub.com/lifeline-sre/lifeline\tv0.0.0-20261206094607-6393719e4f2d+dirty\t\n" +
		"build\t-buildmode=exe\nbuild\tvcs=git\nbuild\tvcs.revision=6393719e4f2d6bd61b6beca4fc856ce540c8cbc4\n" +
		"build\tvcs.time=2026-12-06T09:46:07Z\nbuild\tvcs.modified=true\n"
	fromInstall = "go\tgo1.26.8\npath\tgithub.com/lifeline-sre/lifeline/cmd/lifeline\n" +
		"mod\tgithub.com/lifeline-sre/lifeline\tv1.4.0\th1:abc=\nbuild\t-buildmode=exe\n"
	withoutVCS = "go\tgo1.26.8\npath\tgithub.com/lifeline-sre/lifeline/cmd/lifeline\n" +
		"mod\tgithub.com/lifeline-sre/lifeline\t(devel)\t\nbuild\t-buildvcs=false\n"
)

func parse(t *testing.T, text string) *debug.BuildInfo {
	t.Helper()
	bi, err := debug.ParseBuildInfo(text)
	if err != nil {
		t.Fatal(err)
	}
	bi.GoVersion = strings.TrimPrefix(strings.SplitN(text, "\n", 2)[0], "go\t") // ParseBuildInfo leaves it out
	return bi
}

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name, text, override string
		want                 Info
		line                 string
	}{
		{"checkout", fromCheckout, "", Info{Version: "v0.0.0-20261206094607-6393719e4f2d+dirty", Commit: "6393719e4f2d6bd61b6beca4fc856ce540c8cbc4",
			Time: "2026-12-06T09:46:07Z", Modified: true, GoVersion: "go1.26.8", Module: "github.com/lifeline-sre/lifeline"},
			"lifeline v0.0.0-20261206094607-6393719e4f2d+dirty (commit 6393719e4f2d+modified, 2026-12-06T09:46:07Z, go1.26.8)"},
		{"go install", fromInstall, "", Info{Version: "v1.4.0", GoVersion: "go1.26.8", Module: "github.com/lifeline-sre/lifeline"},
			"lifeline v1.4.0 (go1.26.8)"},
		{"no VCS information", withoutVCS, "", Info{Version: "devel", GoVersion: "go1.26.8", Module: "github.com/lifeline-sre/lifeline"},
			"lifeline devel (go1.26.8)"},
		{"packager's version wins", fromCheckout, "v2.0.0-rc.1", Info{Version: "v2.0.0-rc.1", Commit: "6393719e4f2d6bd61b6beca4fc856ce540c8cbc4",
			Time: "2026-12-06T09:46:07Z", Modified: true, GoVersion: "go1.26.8", Module: "github.com/lifeline-sre/lifeline"},
			"lifeline v2.0.0-rc.1 (commit 6393719e4f2d+modified, 2026-12-06T09:46:07Z, go1.26.8)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromBuildInfo(parse(t, tc.text), tc.override)
			if got != tc.want {
				t.Errorf("fromBuildInfo = %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.line {
				t.Errorf("String() = %q, want %q", got.String(), tc.line)
			}
		})
	}
}

// The test binary has build information of its own: Get reads it.
func TestGet(t *testing.T) {
	in := Get()
	if in.Version == "" || !strings.HasPrefix(in.GoVersion, "go1.") {
		t.Errorf("Get() = %+v", in)
	}
}
