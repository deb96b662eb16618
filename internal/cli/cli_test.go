package cli

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Run(args, &Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestDispatch(t *testing.T) {
	code, out, _ := run("--help")
	if code != 0 {
		t.Errorf("--help exit %d", code)
	}
	for _, c := range []string{"demo", "serve", "sim", "check", "drill", "finetune", "version"} {
		if !strings.Contains(out, "  "+c+" ") {
			t.Errorf("--help does not list %q:\n%s", c, out)
		}
	}
	if code, _, errs := run("frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errs)
	}
	if code, out, _ := run("version"); code != 0 || !strings.HasPrefix(out, "lifeline ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version: exit %d, %q", code, out)
	}
	code, out, _ = run("version", "--json")
	var v struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Version == "" || v.GoVersion != runtime.Version() {
		t.Errorf("version --json: exit %d, %v, %q", code, err, out)
	}
	if code, _, _ := run(); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
}

// TestEveryCommandHasHelp checks that each subcommand answers --help with exit 0 and a usage text.
func TestEveryCommandHasHelp(t *testing.T) {
	for name := range commands() {
		code, out, errs := run(name, "--help")
		if code != 0 || !strings.Contains(out+errs, "Usage") {
			t.Errorf("lifeline %s --help: exit %d, output:\n%s%s", name, code, out, errs)
		}
	}
}

func TestDemoFlagErrors(t *testing.T) {
	if code, _, errs := run("demo", "--duration", "1s"); code != 2 || !strings.Contains(errs, "at least 5s") {
		t.Errorf("short duration: exit %d, %q", code, errs)
	}
	if code, _, errs := run("demo", "--rate", "x"); code != 2 || !strings.Contains(errs, "invalid value") {
		t.Errorf("bad rate: exit %d, %q", code, errs)
	}
}
