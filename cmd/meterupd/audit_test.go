package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditTrail: an update appends activated and committed to the legal
// log, `audit --verify` passes; one byte of the first record altered on
// flash and `audit --verify` fails, naming the break.
func TestAuditTrail(t *testing.T) {
	dir := newNode(t)
	img, sha := writeImage(t, "2.0.0", 200000)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0")
	mustMU(t, dir, "commit")
	out := mustMU(t, dir, "audit", "--verify")
	for _, want := range []string{"activated", "committed", "1.0.0", "2.0.0", "chain: intact, 2 records"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}
	js := mustMU(t, dir, "audit", "--json")
	if !strings.Contains(js, `"kind": "committed"`) || !strings.Contains(js, `"records": 2`) {
		t.Errorf("audit --json:\n%s", js)
	}

	p := filepath.Join(dir, "audit.bin")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("trial of version"))
	if i < 0 {
		t.Fatalf("the first record's detail is not on flash")
	}
	b[i] ^= 0x01 // 't' → 'u': a one-bit alteration
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = mu(t, dir, "audit", "--verify")
	if err == nil || !strings.Contains(err.Error(), "BROKEN") {
		t.Fatalf("audit --verify on an altered log: %v, want a broken chain\n%s", err, out)
	}
	if out, err := mu(t, dir, "audit"); err != nil || !strings.Contains(out, "BROKEN") {
		t.Errorf("audit without --verify: %v; it prints the verdict:\n%s", err, out)
	}
}
