package qemutest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"meterupd/internal/realtool"
)

func TestRealCpioListsOurArchive(t *testing.T) {
	cpio := realtool.Need(t, "cpio", "cpio")
	var buf bytes.Buffer
	c := NewWriter(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Dir("dev", 0o755))
	must(c.CharDev("dev/console", 0o600, 5, 1))
	must(c.File("init", 0o755, []byte("#!/bin/sh\necho odd length\n")))
	must(c.File("lib/x", 0o644, bytes.Repeat([]byte{7}, 4097)))
	must(c.Close())
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not padded to 4", buf.Len())
	}
	cmd := exec.Command(cpio, "-t", "-v", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		t.Fatalf("cpio -t lists %d entries, want 4:\n%s", len(lines), out)
	}
	for i, want := range []string{"drwxr-xr-x", "crw-------", "-rwxr-xr-x", "-rw-r--r--"} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("entry %d = %q, want mode %s", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], "5,") || !strings.HasSuffix(lines[1], "dev/console") {
		t.Errorf("console entry = %q, want device 5, 1", lines[1])
	}
	if !strings.Contains(lines[3], "4097") {
		t.Errorf("lib/x entry = %q, want size 4097", lines[3])
	}
	// Extract and compare contents.
	dir := t.TempDir()
	cmd = exec.Command(cpio, "-i", "-d", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "lib", "x"))
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{7}, 4097)) {
		t.Errorf("extracted lib/x: %v", err)
	}
}

func TestCpioRejectsBadNames(t *testing.T) {
	c := NewWriter(&bytes.Buffer{})
	for _, name := range []string{"", "a\x00b", strings.Repeat("a", 5000)} {
		if err := c.File(name, 0o644, nil); !errors.Is(err, ErrCPIOName) {
			t.Errorf("File(%.10q) = %v, want ErrCPIOName", name, err)
		}
	}
}

func TestModuleOrderPutsDependenciesFirst(t *testing.T) {
	dir := t.TempDir()
	deps := map[string][]string{"nandsim": {"nand_core", "mtd-ecc"}, "nand_core": {"mtd_ecc"}, "mtd_ecc": nil, "loop_a": {"loop_b"}, "loop_b": {"loop_a"}}
	for n := range deps {
		p := filepath.Join(dir, "kernel", "drivers", n+".ko")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := readDepends
	t.Cleanup(func() { readDepends = old })
	readDepends = func(path string) ([]string, error) {
		return deps[strings.TrimSuffix(filepath.Base(path), ".ko")], nil
	}
	mods, err := ModuleOrder(dir, "nandsim")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mods {
		got = append(got, m.Name)
	}
	if want := []string{"mtd_ecc", "nand_core", "nandsim"}; !slices.Equal(got, want) {
		t.Errorf("ModuleOrder(nandsim) = %v, want %v", got, want)
	}
	if _, err := ModuleOrder(dir, "loop_a"); !errors.Is(err, ErrModule) {
		t.Errorf("ModuleOrder(cycle) = %v, want ErrModule", err)
	}
	if _, err := ModuleOrder(dir, "absent"); !errors.Is(err, ErrModule) {
		t.Errorf("ModuleOrder(absent) = %v, want ErrModule", err)
	}
}

func TestParseModinfo(t *testing.T) {
	data := []byte("license=GPL\x00depends=mtd,nand\x00name=nandsim\x00vermagic=6.1.0 SMP\x00")
	if got, want := ParseModinfo(data), []string{"mtd", "nand"}; !slices.Equal(got, want) {
		t.Errorf("ParseModinfo = %v, want %v", got, want)
	}
	if got := ParseModinfo([]byte("depends=\x00name=x\x00")); got != nil {
		t.Errorf("ParseModinfo(no deps) = %v, want nil", got)
	}
}

func TestInitramfsListsModulesInLoadOrder(t *testing.T) {
	dir := t.TempDir()
	var mods []Module
	for _, n := range []string{"a", "b"} {
		p := filepath.Join(dir, n+".ko")
		if err := os.WriteFile(p, []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
		mods = append(mods, Module{Name: n, Path: p})
	}
	var buf bytes.Buffer
	if err := (Initramfs{Init: []byte("init"), Modules: mods, Params: map[string]string{"b": "x=1"}}).Write(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("a.ko \nb.ko x=1\n")) {
		t.Errorf("archive lacks the load list in order")
	}
	if !bytes.HasSuffix(bytes.TrimRight(buf.Bytes(), "\x00"), []byte("TRAILER!!!")) {
		t.Errorf("archive does not end with the trailer")
	}
}

func FuzzParseModinfo(f *testing.F) {
	for _, name := range []string{"nandsim.modinfo", "mtdblock.modinfo"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		deps := ParseModinfo(data)
		if len(deps) == 0 {
			return
		}
		// Round trip: the list re-encoded parses to itself.
		again := ParseModinfo([]byte("depends=" + strings.Join(deps, ",") + "\x00"))
		if !slices.Equal(again, deps) {
			t.Fatalf("round trip %q, want %q", again, deps)
		}
	})
}

func TestParseModinfoOfRealModules(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "mtdblock.modinfo"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ParseModinfo(data), []string{"mtd_blkdevs"}; !slices.Equal(got, want) {
		t.Errorf("ParseModinfo(mtdblock) = %q, want %q", got, want)
	}
}
