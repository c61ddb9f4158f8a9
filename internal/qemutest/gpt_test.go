package qemutest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/internal/realtool"
)

func TestRealPartxReadsOurGPT(t *testing.T) {
	partx := realtool.Need(t, "partx", "util-linux")
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	parts := []GPTPart{{"rootfs_a", 2048, 4095}, {"common", 4096, 6143}}
	if err := WriteGPT(f, size, parts); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(partx, "--show", "--output", "NR,START,END,NAME", "--noheadings", path).CombinedOutput()
	if err != nil {
		t.Fatalf("partx: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	want := strings.Fields("1 2048 4095 rootfs_a 2 4096 6143 common")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("partx --show = %q, want %q", got, want)
	}
}

func TestGPTRejectsBadLayouts(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, parts := range [][]GPTPart{
		{{"x", 10, 20}},                         // inside the primary table
		{{"x", 2048, 1 << 20}},                  // past the end
		{{strings.Repeat("n", 37), 2048, 2049}}, // name too long
	} {
		if err := WriteGPT(f, 4<<20, parts); !errors.Is(err, ErrGPT) {
			t.Errorf("WriteGPT(%v) = %v, want ErrGPT", parts, err)
		}
	}
}
