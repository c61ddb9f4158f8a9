package node

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/internal/realtool"
)

// The unit and the init script a meter maker installs (dist/), checked
// with the real tools.

func TestRealSystemdAnalyzeVerifyUnit(t *testing.T) {
	sa := realtool.Need(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("../dist/meterupd.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's binary exists: point it at one that
	// does (this test's own executable).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "meterupd.service")
	os.WriteFile(p, bytes.ReplaceAll(unit, []byte("/usr/bin/meterupd"), []byte(self)), 0o644)
	out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
	// Unknown settings are only warnings: any output is a failure.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "RuntimeDirectory=meterupd", "StandardError=journal"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %s", want)
		}
	}
}

func TestRealShellcheckInitScript(t *testing.T) {
	sc := realtool.Need(t, "shellcheck", "shellcheck")
	if out, err := exec.Command(sc, "-s", "sh", "../dist/init.d/meterupd").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestInitScriptStartsAndStops runs the SysV script on a sim node: start
// waits for the socket, status sees the daemon, stop ends it with SIGTERM.
func TestInitScriptStartsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	realtool.Need(t, "logger", "bsdutils")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "meterupd")
	if out, err := exec.Command("go", "build", "-o", bin, "meterupd/cmd/meterupd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	node := filepath.Join(tmp, "node")
	if out, err := exec.Command(bin, "sim", "init", node, "--image-size", "262144").CombinedOutput(); err != nil {
		t.Fatalf("sim init: %v\n%s", err, out)
	}
	run := filepath.Join(tmp, "run")
	script := func(arg string) (string, error) {
		cmd := exec.Command("sh", "../dist/init.d/meterupd", arg)
		cmd.Env = append(os.Environ(), "DAEMON="+bin, "DAEMON_ARGS=--state "+node, "RUNDIR="+run)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { script("stop") })
	if out, err := script("start"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if out, err := script("status"); err != nil || !strings.Contains(out, "is running") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--state", node, "--socket", filepath.Join(run, "meterupd.sock"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "daemon: meterupd") {
		t.Errorf("version through the started daemon: %v\n%s", err, out)
	}
	pid, _ := os.ReadFile(filepath.Join(run, "meterupd.pid"))
	start := time.Now()
	if out, err := script("stop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	t.Logf("stopped in %v", time.Since(start))
	if _, err := os.Stat("/proc/" + strings.TrimSpace(string(pid))); err == nil {
		t.Errorf("pid %s still there after stop", pid)
	}
	if out, err := script("status"); err == nil {
		t.Errorf("status after stop: %s", out)
	}
}
