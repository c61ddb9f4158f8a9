package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/headend/fleetsim"
)

func TestParsePercent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1%", 0.01, true}, {"5", 0.05, true}, {" 0% ", 0, true}, {"100%", 1, true},
		{"101%", 0, false}, {"-1%", 0, false}, {"x", 0, false}, {"NaN", 0, false},
	} {
		got, err := parsePercent(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parsePercent(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestSimulateRelease: `simulate release` writes a signed package the
// simulated nodes take; `simulate` refuses to start without the keys.
func TestSimulateRelease(t *testing.T) {
	key, err := filepath.Abs(filepath.Join("..", "..", "testdata", "keys", "test-ed25519.key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := runOut(t, "simulate", "--nodes", "1", "--dir", "fleet"); err == nil || !strings.Contains(err.Error(), "--keys") {
		t.Errorf("simulate without --keys: err = %v, want one naming --keys", err)
	}
	if _, err := runOut(t, "simulate", "--nodes", "1", "--fail", "200%", "--keys", "k.pem"); err == nil || !strings.Contains(err.Error(), "--fail") {
		t.Errorf("simulate --fail 200%%: err = %v, want one naming --fail", err)
	}
	out, err := runOut(t, "simulate", "release", "--key", key, "-o", "r.pkg")
	if err != nil {
		t.Fatalf("simulate release: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "r.pkg")); err != nil || fi.Size() == 0 {
		t.Errorf("simulate release wrote %v, %v; want a package", fi, err)
	}
	if !strings.Contains(out, "hardware revision 9") {
		t.Errorf("simulate release said %q, want the failing hardware revision named", out)
	}
	if want := "revision 9"; fleetsim.FailHardware != 9 {
		t.Errorf("FailHardware = %d, the message says %s", fleetsim.FailHardware, want)
	}
}
