// Package realtool finds the real peer tools (Debian's bsdiff, fw_printenv,
// mosquitto, qemu-arm-static…) that tests run against.
//
// Outside CI a missing tool skips the test and names the package to install
// (make deps does). Under CI=true a missing tool fails the test: CI must
// never pass by skipping the comparison with the real thing.
package realtool

import (
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of the command name, from Debian package pkg.
func Need(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (Debian package %s): CI needs the real tool", name, pkg)
	}
	t.Skipf("%s not found: install Debian package %s (make deps)", name, pkg)
	return ""
}
