package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks deploy/systemd/lifeline.service with systemd's own tools: `systemd-analyze verify` (syntax,
// directives, the ExecStart binary, here the real static build) and `systemd-analyze security --offline`, whose
// exposure score must stay at 2.0 or below ("OK"). Readiness over $NOTIFY_SOCKET is tested in internal/cli
// (TestServeNotifiesSystemd) against a real unix datagram socket.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("systemd/lifeline.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"ExecReload=/bin/kill -HUP $MAINPID", "TimeoutStopSec=45s"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is required (Debian package systemd; scripts/setup.sh installs it)")
	}
	bin := staticBinary(t)
	path := filepath.Join(t.TempDir(), "lifeline.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/lifeline", bin)), 0o644)
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Log(lines[len(lines)-1])
}
