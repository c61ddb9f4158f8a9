package ubootboot

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/ubootenv"
)

// readFixture reads a testdata/states/*.env file: fw_printenv output
// preceded by "# next: X" (the slot the script boots) or "# error".
func readFixture(t testing.TB, path string) (ubootenv.Env, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env, next := ubootenv.Env{}, ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "# "); ok {
			if next == "" {
				next = strings.TrimPrefix(h, "next: ")
			}
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	return env, next
}

// TestFixtures: the slot each stored state boots next, as the script
// decides it (the same states run in real U-Boot in qemu_test.go).
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "states", "*.env"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, p := range files {
		env, next := readFixture(t, p)
		st, err := StateFromEnv(env)
		if next == "error" {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: StateFromEnv = %v, want ErrCorrupt", p, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: StateFromEnv: %v", p, err)
			continue
		}
		if got := Next(st); string(got) != next {
			t.Errorf("%s: Next = %s, want %s", p, got, next)
		}
	}
}

// FuzzStateFromEnv: no panic on any variable values; a state that loads
// stores and loads back the same.
func FuzzStateFromEnv(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "states", "*.env"))
	for _, p := range files {
		env, _ := readFixture(f, p)
		f.Add(env[VarOrder], env[VarLeftPrefix+"A"], env[VarLeftPrefix+"B"], env[VarLeftPrefix+"F"])
	}
	f.Fuzz(func(t *testing.T, order, a, b, fs string) {
		env := ubootenv.Env{VarOrder: order}
		for s, v := range map[string]string{"A": a, "B": b, "F": fs} {
			if v != "" {
				env[VarLeftPrefix+s] = v
			}
		}
		st, err := StateFromEnv(env)
		if err != nil {
			var ve *VarError
			if !errors.As(err, &ve) {
				t.Fatalf("StateFromEnv error %v is not a VarError", err)
			}
			return
		}
		for _, n := range st.Left {
			if n < 0 || n > hw.MaxAttempts {
				t.Fatalf("attempts %d outside 0..%d", n, hw.MaxAttempts)
			}
		}
		out := ubootenv.Env{}
		if err := ApplyState(out, st, hw.SlotA); err != nil {
			t.Fatalf("ApplyState(StateFromEnv) = %v", err)
		}
		again, err := StateFromEnv(out)
		if err != nil || !reflect.DeepEqual(again.Left, st.Left) || len(again.Order) != len(st.Order) {
			t.Fatalf("round trip: %v, %v; want %v", again, err, st)
		}
	})
}
