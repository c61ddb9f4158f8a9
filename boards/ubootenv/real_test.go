package ubootenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"meterupd/internal/realtool"
)

// mkenvimage runs Debian's mkenvimage on env written as sorted lines.
func mkenvimage(t *testing.T, env Env, size int, redundant bool, pad string) []byte {
	t.Helper()
	tool := realtool.Need(t, "mkenvimage", "u-boot-tools")
	dir := t.TempDir()
	var in strings.Builder
	for _, k := range env.Names() {
		fmt.Fprintf(&in, "%s=%s\n", k, env[k])
	}
	src, out := filepath.Join(dir, "env.txt"), filepath.Join(dir, "env.bin")
	if err := os.WriteFile(src, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", fmt.Sprint(size), "-o", out}
	if redundant {
		args = append(args, "-r")
	}
	if pad != "" {
		args = append(args, "-p", pad)
	}
	if b, err := exec.Command(tool, append(args, src)...).CombinedOutput(); err != nil {
		t.Fatalf("mkenvimage: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var interopEnv = Env{
	"bootcmd":         "if test -n ${meterupd_order}; then source ${scriptaddr}; fi",
	"bootdelay":       "0",
	"meterupd_order":  "A B",
	"meterupd_left_A": "3",
	"with_equals":     "a=b=c",
	"empty":           "",
	"utf8":            "zähler",
}

// TestRealMkenvimageMatchesEncode: with zero padding, mkenvimage's image
// is byte for byte ours (single, and redundant with flag 1).
func TestRealMkenvimageMatchesEncode(t *testing.T) {
	for _, red := range []bool{false, true} {
		want := mkenvimage(t, interopEnv, 0x2000, red, "0")
		got, err := Encode(interopEnv, 0x2000, red, FlagActive)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("redundant=%v: Encode differs from mkenvimage -p 0 at byte %d", red, firstDiff(got, want))
		}
	}
}

// TestRealMkenvimageDefaultPadding: mkenvimage pads with 0xFF by default
// (flash erased value); Decode reads it.
func TestRealMkenvimageDefaultPadding(t *testing.T) {
	for _, red := range []bool{false, true} {
		img := mkenvimage(t, interopEnv, 0x2000, red, "")
		got, _, err := Decode(img, red)
		if err != nil || !reflect.DeepEqual(got, interopEnv) {
			t.Errorf("Decode(mkenvimage, redundant=%v) = %v, %v, want %v", red, got, err, interopEnv)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

type fileEnv struct {
	img, cfg string
	store    *Store
}

// newFileEnv makes an image file holding the copies and its fw_env.config.
func newFileEnv(t *testing.T, size int, redundant bool) fileEnv {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "env.img")
	n := size
	text := fmt.Sprintf("# test environment\n%s 0x0 %#x\n", img, size)
	if redundant {
		n *= 2
		text += fmt.Sprintf("%s %#x %#x\n", img, size, size)
	}
	if err := os.WriteFile(img, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, dir, text)
	cfg, err := ReadConfig(cfgPath)
	if err != nil {
		t.Fatalf("ReadConfig: %v", err)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return fileEnv{img: img, cfg: cfgPath, store: s}
}

// TestRealFwPrintenvReadsOurs: what Save writes, fw_printenv reads,
// single and redundant, across saves that take the serial through the
// 255 -> 0 wrap.
func TestRealFwPrintenvReadsOurs(t *testing.T) {
	tool := realtool.Need(t, "fw_printenv", "libubootenv-tool")
	for _, red := range []bool{false, true} {
		fe := newFileEnv(t, 0x1000, red)
		if red {
			a, _ := Encode(Env{"old": "1"}, 0x1000, true, 249)
			b, _ := Encode(Env{"old": "2"}, 0x1000, true, 250)
			if err := os.WriteFile(fe.img, append(a, b...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		env := interopEnv.Clone()
		for i := 0; i < 300; i++ {
			if i == 12 {
				i = 299
			}
			env["serial"] = fmt.Sprint(i)
			if err := fe.store.Save(env); err != nil {
				t.Fatalf("Save %d: %v", i, err)
			}
			if got := printenv(t, tool, fe.cfg); !reflect.DeepEqual(got, env) {
				t.Fatalf("redundant=%v, save %d: fw_printenv = %v, want %v", red, i, got, env)
			}
		}
		if got := printenv(t, tool, fe.cfg, "serial", "bootdelay"); got["serial"] != "299" || got["bootdelay"] != "0" {
			t.Errorf("fw_printenv serial bootdelay = %v", got)
		}
	}
}

// TestRealFwSetenvWritesWeRead alternates fw_setenv and Update on one
// redundant image built by mkenvimage; after each write both sides read
// the same environment.
func TestRealFwSetenvWritesWeRead(t *testing.T) {
	setenv := realtool.Need(t, "fw_setenv", "libubootenv-tool")
	printTool := realtool.Need(t, "fw_printenv", "libubootenv-tool")
	fe := newFileEnv(t, 0x1000, true)
	copy0 := mkenvimage(t, interopEnv, 0x1000, true, "")
	if err := os.WriteFile(fe.img, append(copy0, bytes.Repeat([]byte{0xFF}, 0x1000)...), 0o644); err != nil {
		t.Fatal(err)
	}
	want := interopEnv.Clone()
	for i := 0; i < 6; i++ {
		if i%2 == 0 {
			args := []string{"-c", fe.cfg, "round", fmt.Sprint(i), "meterupd_order", "B A"}
			if i == 2 {
				args = append(args, "with_equals") // a name alone deletes
				delete(want, "with_equals")
			}
			if b, err := exec.Command(setenv, args...).CombinedOutput(); err != nil {
				t.Fatalf("fw_setenv: %v: %s", err, b)
			}
			want["round"], want["meterupd_order"] = fmt.Sprint(i), "B A"
		} else {
			err := fe.store.Update(func(e Env) error {
				e["round"] = fmt.Sprint(i)
				delete(e, "empty")
				return nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			want["round"] = fmt.Sprint(i)
			delete(want, "empty")
		}
		got, err := fe.store.Load()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: Load = %v, %v, want %v", i, got, err, want)
		}
		if theirs := printenv(t, printTool, fe.cfg); !reflect.DeepEqual(theirs, want) {
			t.Fatalf("round %d: fw_printenv = %v, want %v", i, theirs, want)
		}
	}
}

// TestRealFwPrintenvSerialWrap: images with hand-set serials around the
// wrap; fw_printenv and Load pick the same copy.
func TestRealFwPrintenvSerialWrap(t *testing.T) {
	tool := realtool.Need(t, "fw_printenv", "libubootenv-tool")
	fe := newFileEnv(t, 0x400, true)
	for _, f := range [][2]byte{{255, 0}, {0, 255}, {254, 255}, {255, 254}, {7, 7}, {1, 2}, {2, 1}} {
		a, _ := Encode(Env{"copy": "0"}, 0x400, true, f[0])
		b, _ := Encode(Env{"copy": "1"}, 0x400, true, f[1])
		if err := os.WriteFile(fe.img, append(a, b...), 0o644); err != nil {
			t.Fatal(err)
		}
		ours, err := fe.store.Load()
		if err != nil {
			t.Fatalf("flags %v: Load: %v", f, err)
		}
		if theirs := printenv(t, tool, fe.cfg); theirs["copy"] != ours["copy"] {
			t.Errorf("flags %v: fw_printenv picks copy %s, Load copy %s", f, theirs["copy"], ours["copy"])
		}
	}
}
