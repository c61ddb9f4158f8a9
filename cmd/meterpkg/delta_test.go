package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/internal/realtool"
)

func versions(n int) [][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	v := make([]byte, 60_000)
	for i := range v {
		v[i] = byte(r.IntN(16))
	}
	out := [][]byte{v}
	for i := 1; i < n; i++ {
		v = append([]byte(nil), v...)
		for k := 0; k < 50; k++ {
			v[r.IntN(len(v))] = byte(r.Uint32())
		}
		v = append(v[:1000], append([]byte("inserted code"), v[1000:]...)...)
		out = append(out, v)
	}
	return out
}

func runCmd(t *testing.T, args ...string) error {
	t.Helper()
	var out, errb bytes.Buffer
	return run(context.Background(), args, &out, &errb)
}

func TestDiffPatchChain(t *testing.T) {
	dir := t.TempDir()
	vs := versions(4)
	var files []string
	for i, v := range vs {
		p := filepath.Join(dir, "v"+string(rune('0'+i)))
		os.WriteFile(p, v, 0o644)
		files = append(files, p)
	}
	for _, format := range []string{"node", "bsdiff40", "bsdiff43"} {
		d := filepath.Join(dir, "d-"+format)
		if err := runCmd(t, "diff", files[0], files[1], d, "--format", format); err != nil {
			t.Fatalf("diff --format %s: %v", format, err)
		}
		out := filepath.Join(dir, "out-"+format)
		if err := runCmd(t, "patch", files[0], d, out); err != nil {
			t.Fatalf("patch (%s): %v", format, err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, vs[1]) {
			t.Fatalf("patch (%s) output differs from v1", format)
		}
	}
	var ds []string
	for i := 0; i+1 < len(files); i++ {
		d := filepath.Join(dir, "hop"+string(rune('0'+i)))
		if err := runCmd(t, "diff", "--format=node", files[i], files[i+1], d); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	out := filepath.Join(dir, "chained")
	if err := runCmd(t, append([]string{"chain", files[0], out}, ds...)...); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, vs[3]) {
		t.Fatal("chain output differs from v3")
	}
	// Wrong source: refused, nothing written.
	bad := filepath.Join(dir, "bad")
	if err := runCmd(t, "patch", files[2], ds[0], bad); err == nil || !strings.Contains(err.Error(), "source") {
		t.Fatalf("patch with the wrong source = %v, want a source mismatch", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("patch with the wrong source left %s behind", bad)
	}
}

func TestDeltaUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"diff", "a", "b"},
		{"diff", "a", "b", "c", "--format", "gzip"},
		{"diff", "a", "b", "c", "--format"},
		{"patch", "a"},
		{"chain", "a", "b"},
	} {
		var ue usageError
		if err := runCmd(t, args...); !errors.As(err, &ue) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

func TestRealBsdiffPatchByMeterpkgPatch(t *testing.T) {
	bsdiff := realtool.Need(t, "bsdiff", "bsdiff")
	bspatch := realtool.Need(t, "bspatch", "bsdiff")
	dir := t.TempDir()
	vs := versions(2)
	oldF, newF := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	os.WriteFile(oldF, vs[0], 0o644)
	os.WriteFile(newF, vs[1], 0o644)

	// Debian's bsdiff → meterpkg patch.
	theirs := filepath.Join(dir, "theirs.bsdiff")
	if out, err := exec.Command(bsdiff, oldF, newF, theirs).CombinedOutput(); err != nil {
		t.Fatalf("bsdiff: %v: %s", err, out)
	}
	got := filepath.Join(dir, "got")
	if err := runCmd(t, "patch", oldF, theirs, got); err != nil {
		t.Fatalf("meterpkg patch (bsdiff's patch): %v", err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, vs[1]) {
		t.Fatal("meterpkg patch of bsdiff's patch differs from new")
	}

	// meterpkg diff --format bsdiff40 → Debian's bspatch.
	ours := filepath.Join(dir, "ours.bsdiff")
	if err := runCmd(t, "diff", oldF, newF, ours, "--format", "bsdiff40"); err != nil {
		t.Fatal(err)
	}
	got2 := filepath.Join(dir, "got2")
	if out, err := exec.Command(bspatch, oldF, got2, ours).CombinedOutput(); err != nil {
		t.Fatalf("bspatch (our patch): %v: %s", err, out)
	}
	if b, _ := os.ReadFile(got2); !bytes.Equal(b, vs[1]) {
		t.Fatal("bspatch of meterpkg's bsdiff40 patch differs from new")
	}
}
