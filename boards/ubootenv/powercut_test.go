package ubootenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"meterupd/boards/ubootenv/ubootenvtest"
	"meterupd/internal/realtool"
)

type geometry struct {
	name  string
	flash func() *ubootenvtest.Flash
	style FlagStyle
}

var geometries = []geometry{
	{"nor", func() *ubootenvtest.Flash { return ubootenvtest.NewNOR(4*0x1000, 0x1000) }, ActiveObsolete},
	{"nand", func() *ubootenvtest.Flash { return ubootenvtest.NewNAND(4*0x1000, 0x1000, 512) }, Counter},
}

const cutEnvSize = 0x1000

func flashStore(t *testing.T, f *ubootenvtest.Flash) *Store {
	t.Helper()
	s, err := NewFlash(cutEnvSize, []FlashCopy{{Flash: f, Offset: 0}, {Flash: f, Offset: 0x1000}})
	if err != nil {
		t.Fatalf("NewFlash: %v", err)
	}
	return s
}

// history is the sequence of environments saved before the cut: the last
// is the "old" one, the one before it lies in the obsolete copy.
var history = []Env{
	{"bootcmd": "run meterupd", "meterupd_order": "A B", "meterupd_left_A": "3", "ver": "1"},
	{"bootcmd": "run meterupd", "meterupd_order": "A B", "meterupd_left_A": "3", "ver": "2"},
}

var newEnv = Env{"bootcmd": "run meterupd", "meterupd_order": "B A", "meterupd_left_A": "3", "meterupd_left_B": "3",
	"upgrade_available": "1", "bootcount": "0", "ver": "3"}

// TestPowerCutAtEveryOperation cuts power before, after, and inside every
// flash operation of one Save (inside: at every byte), reboots from what
// is on flash, and checks that the environment read is the old or the new
// one, never an older one and never nothing; then that a new Save works.
// The real fw_printenv check is in TestRealFwPrintenvAfterPowerCut.
func TestPowerCutAtEveryOperation(t *testing.T) {
	for _, g := range geometries {
		t.Run(g.name, func(t *testing.T) {
			base := g.flash()
			s := flashStore(t, base)
			if s.FlagStyle() != g.style {
				t.Fatalf("FlagStyle() = %v, want %v", s.FlagStyle(), g.style)
			}
			for _, e := range history {
				if err := s.Save(e); err != nil {
					t.Fatalf("Save(history): %v", err)
				}
			}
			sizes := countOps(t, base)
			n := len(sizes)
			if n < 2 {
				t.Fatalf("a save took %d flash operations", n)
			}
			cases := 0
			for op := 1; op <= n; op++ {
				for _, c := range cutPoints(sizes[op-1], true) {
					cases++
					f := base.Clone()
					f.CutOp, f.Mode, f.TornAt = op, c.mode, c.torn
					if err := flashStore(t, f).Save(newEnv); err == nil {
						t.Fatalf("op %d %v: Save succeeded through a power cut", op, c)
					}
					r := f.Clone()
					got, err := flashStore(t, r).Load()
					if err != nil {
						t.Fatalf("op %d %v at %d: Load after cut: %v", op, c.mode, c.torn, err)
					}
					if !reflect.DeepEqual(got, history[1]) && !reflect.DeepEqual(got, newEnv) {
						t.Fatalf("op %d %v at %d: Load after cut = %v, want the old or the new environment", op, c.mode, c.torn, got)
					}
					if err := flashStore(t, r).Save(newEnv); err != nil {
						t.Fatalf("op %d %v at %d: Save after reboot: %v", op, c.mode, c.torn, err)
					}
					if got, err := flashStore(t, r.Clone()).Load(); err != nil || !reflect.DeepEqual(got, newEnv) {
						t.Fatalf("op %d %v at %d: Load after re-save = %v, %v, want the new environment", op, c.mode, c.torn, got, err)
					}
				}
			}
			t.Logf("%s: %d flash operations per save, %d cuts checked", g.name, n, cases)
		})
	}
}

type cut struct {
	mode ubootenvtest.CutMode
	torn int64
}

// cutPoints lists the cuts for one operation: before, after, and torn at
// every byte (all) or at a sample of bytes.
func cutPoints(size int64, all bool) []cut {
	c := []cut{{mode: ubootenvtest.CutBefore}, {mode: ubootenvtest.CutAfter}}
	if all {
		for k := int64(0); k < size; k++ {
			c = append(c, cut{mode: ubootenvtest.CutTorn, torn: k})
		}
		return c
	}
	for _, k := range []int64{0, 1, 3, 4, 5, 6, 64, size / 2, size - 2, size - 1} {
		if k >= 0 && k < size {
			c = append(c, cut{mode: ubootenvtest.CutTorn, torn: k})
		}
	}
	return c
}

// countOps returns the sizes of the flash operations of one clean Save.
func countOps(t *testing.T, base *ubootenvtest.Flash) []int64 {
	t.Helper()
	f := base.Clone()
	if err := flashStore(t, f).Save(newEnv); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return f.OpSizes
}

// TestRealFwPrintenvAfterPowerCut checks, with Debian's fw_printenv, the
// flash contents left by a power cut before, after and inside (at sampled
// bytes) every operation of one Save: it must read the old or the new
// environment, and the same one as Load.
func TestRealFwPrintenvAfterPowerCut(t *testing.T) {
	fwPrintenv := realtool.Need(t, "fw_printenv", "libubootenv-tool")
	for _, g := range geometries {
		t.Run(g.name, func(t *testing.T) {
			base := g.flash()
			s := flashStore(t, base)
			for _, e := range history {
				if err := s.Save(e); err != nil {
					t.Fatalf("Save(history): %v", err)
				}
			}
			dir := t.TempDir()
			img := filepath.Join(dir, "flash.img")
			cfg := writeConfig(t, dir, fmt.Sprintf("%s 0x0 %#x\n%s 0x1000 %#x\n", img, cutEnvSize, img, cutEnvSize))
			sizes := countOps(t, base)
			for op := 1; op <= len(sizes); op++ {
				for _, c := range cutPoints(sizes[op-1], false) {
					f := base.Clone()
					f.CutOp, f.Mode, f.TornAt = op, c.mode, c.torn
					_ = flashStore(t, f).Save(newEnv)
					ours, err := flashStore(t, f.Clone()).Load()
					if err != nil {
						t.Fatalf("op %d %v at %d: Load: %v", op, c.mode, c.torn, err)
					}
					if err := os.WriteFile(img, f.Mem, 0o644); err != nil {
						t.Fatal(err)
					}
					theirs := printenv(t, fwPrintenv, cfg)
					if !reflect.DeepEqual(theirs, history[1]) && !reflect.DeepEqual(theirs, newEnv) {
						t.Fatalf("op %d %v at %d: fw_printenv = %v, want the old or the new environment", op, c.mode, c.torn, theirs)
					}
					if !reflect.DeepEqual(theirs, ours) {
						t.Fatalf("op %d %v at %d: fw_printenv = %v, Load = %v", op, c.mode, c.torn, theirs, ours)
					}
				}
			}
		})
	}
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// printenv runs fw_printenv -c cfg and returns its variables.
func printenv(t *testing.T, tool, cfg string, names ...string) Env {
	t.Helper()
	out, err := exec.Command(tool, append([]string{"-c", cfg}, names...)...).Output()
	if err != nil {
		t.Fatalf("fw_printenv: %v", err)
	}
	env := Env{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("fw_printenv line %q has no '='", line)
		}
		env[k] = v
	}
	return env
}

// TestNORTornEraseCannotReviveOlderCopy: a torn NOR erase may set the
// obsolete copy's flag byte back to 0xFF while its data survives; U-Boot
// prefers an 0xFF flag, which would bring back the environment from two
// saves ago. Save clears that copy's CRC before erasing, so it cannot.
func TestNORTornEraseCannotReviveOlderCopy(t *testing.T) {
	base := ubootenvtest.NewNOR(4*0x1000, 0x1000)
	s := flashStore(t, base)
	for _, e := range history { // copy 0: history[0], obsolete; copy 1: history[1], active
		if err := s.Save(e); err != nil {
			t.Fatal(err)
		}
	}
	revive := func(f *ubootenvtest.Flash) { f.Mem[4] = 0xFF } // the flag byte alone erased
	// Without the invalidation the old copy would win:
	old := base.Clone()
	revive(old)
	if got, _ := flashStore(t, old).Load(); !reflect.DeepEqual(got, history[0]) {
		t.Fatalf("control: flag erased alone = %v, want the older copy to win (U-Boot's 0xFF rule)", got)
	}
	// With it: power goes after the invalidation, during the erase.
	f := base.Clone()
	f.CutOp, f.Mode = 2, ubootenvtest.CutBefore
	if err := flashStore(t, f).Save(newEnv); err == nil {
		t.Fatal("Save succeeded through a power cut")
	}
	r := f.Clone()
	revive(r)
	if got, err := flashStore(t, r).Load(); err != nil || !reflect.DeepEqual(got, history[1]) {
		t.Errorf("after a torn erase = %v, %v, want the current environment %v", got, err, history[1])
	}
}
