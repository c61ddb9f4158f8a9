package ubootboot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/ubootenv"
)

// countingEnv is an in-memory Env that counts writes.
type countingEnv struct {
	env    ubootenv.Env
	writes int
	err    error
}

func (c *countingEnv) Load() (ubootenv.Env, error) {
	if c.err != nil {
		return nil, c.err
	}
	return c.env.Clone(), nil
}

func (c *countingEnv) Update(fn func(ubootenv.Env) error) error {
	if c.err != nil {
		return c.err
	}
	e := c.env.Clone()
	if err := fn(e); err != nil {
		return err
	}
	c.env = e
	c.writes++
	return nil
}

func rootWithCmdline(t *testing.T, cmdline string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc", "cmdline"), []byte(cmdline), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestArmTrialIsOneWrite: arming writes order, attempts, upgrade_available=1
// and bootcount=0 in one environment write, and keeps U-Boot's variables.
func TestArmTrialIsOneWrite(t *testing.T) {
	ce := &countingEnv{env: ubootenv.Env{"bootcmd": "run meterupd", "meterupd_order": "A", "meterupd_left_A": "2",
		"upgrade_available": "0", "bootcount": "0", "bootlimit": "3"}}
	bc := New(ce, WithRoot(rootWithCmdline(t, "console=ttyS0 root=/dev/mtdblock4 meterupd.slot=A\n")))
	arm := hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 3, hw.SlotA: 3}}
	if err := bc.Store(arm); err != nil {
		t.Fatalf("Store: %v", err)
	}
	if ce.writes != 1 {
		t.Errorf("Store made %d writes, want 1", ce.writes)
	}
	want := ubootenv.Env{"bootcmd": "run meterupd", "meterupd_order": "B A", "meterupd_left_A": "3", "meterupd_left_B": "3",
		"upgrade_available": "1", "bootcount": "0", "bootlimit": "3"}
	if !reflect.DeepEqual(ce.env, want) {
		t.Errorf("env after arming = %v, want %v", ce.env, want)
	}
	got, err := bc.Load()
	if err != nil || !reflect.DeepEqual(got, arm) {
		t.Errorf("Load = %v, %v, want %v", got, err, arm)
	}
}

func TestApplyState(t *testing.T) {
	st := func(order string, left map[hw.Slot]int) hw.BootState {
		s := hw.BootState{Left: left}
		for _, c := range order {
			s.Order = append(s.Order, hw.Slot(c))
		}
		return s
	}
	tests := []struct {
		name    string
		state   hw.BootState
		booted  hw.Slot
		upgrade string
		limit   string
	}{
		{"arm B while A runs", st("BA", map[hw.Slot]int{hw.SlotB: 3, hw.SlotA: 3}), hw.SlotA, "1", "3"},
		{"commit B while B runs", st("BA", map[hw.Slot]int{hw.SlotB: 3, hw.SlotA: 3}), hw.SlotB, "0", "3"},
		{"rollback confirmed on A", st("AB", map[hw.Slot]int{hw.SlotA: 3, hw.SlotB: 0}), hw.SlotA, "0", "3"},
		{"rollback armed from B", st("AB", map[hw.Slot]int{hw.SlotA: 2, hw.SlotB: 0}), hw.SlotB, "1", "2"},
		{"trial exhausted: next is A", st("BA", map[hw.Slot]int{hw.SlotB: 0, hw.SlotA: 3}), hw.SlotA, "0", "3"},
		{"nothing left: F", st("BA", map[hw.Slot]int{}), hw.SlotA, "0", "0"},
		{"booted unknown: trial", st("A", map[hw.Slot]int{hw.SlotA: 1}), "", "1", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := ubootenv.Env{"meterupd_left_F": "1", "keep": "x"}
			if err := ApplyState(env, tt.state, tt.booted); err != nil {
				t.Fatalf("ApplyState: %v", err)
			}
			if env["upgrade_available"] != tt.upgrade || env["bootlimit"] != tt.limit || env["bootcount"] != "0" || env["keep"] != "x" {
				t.Errorf("env = %v, want upgrade_available=%s bootlimit=%s bootcount=0", env, tt.upgrade, tt.limit)
			}
			if _, ok := env["meterupd_left_F"]; ok {
				t.Errorf("meterupd_left_F kept though F has no attempts in the state")
			}
			got, err := StateFromEnv(env)
			if err != nil {
				t.Fatalf("StateFromEnv: %v", err)
			}
			if len(got.Order) != len(tt.state.Order) || !reflect.DeepEqual(got.Left, tt.state.Left) {
				t.Errorf("StateFromEnv(ApplyState(s)) = %v, want %v", got, tt.state)
			}
		})
	}
}

func TestStoreRejectsBadState(t *testing.T) {
	tests := []hw.BootState{
		{Order: []hw.Slot{"C"}},
		{Order: []hw.Slot{hw.SlotA, hw.SlotA}},
		{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: hw.MaxAttempts + 1}},
		{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: -1}},
		{Left: map[hw.Slot]int{"x": 1}},
	}
	for _, s := range tests {
		ce := &countingEnv{env: ubootenv.Env{}}
		err := New(ce, WithRoot(rootWithCmdline(t, "meterupd.slot=A"))).Store(s)
		if !errors.Is(err, ErrBadBootState) || ce.writes != 0 {
			t.Errorf("Store(%v) = %v with %d writes, want ErrBadBootState and no write", s, err, ce.writes)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		env  ubootenv.Env
	}{
		{"unknown slot", ubootenv.Env{"meterupd_order": "B X"}},
		{"slot twice", ubootenv.Env{"meterupd_order": "A A"}},
		{"attempts not a number", ubootenv.Env{"meterupd_order": "A", "meterupd_left_A": "three"}},
		{"attempts too many", ubootenv.Env{"meterupd_order": "A", "meterupd_left_A": "8"}},
		{"attempts negative", ubootenv.Env{"meterupd_order": "A", "meterupd_left_A": "-1"}},
		{"attempts with sign", ubootenv.Env{"meterupd_order": "A", "meterupd_left_A": "+1"}},
		{"attempts hex", ubootenv.Env{"meterupd_order": "A", "meterupd_left_A": "0x1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(&countingEnv{env: tt.env}).Load()
			var ve *VarError
			if !errors.As(err, &ve) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("Load(%v) = %v, want a VarError wrapping ErrCorrupt", tt.env, err)
			}
		})
	}
	got, err := New(&countingEnv{env: ubootenv.Env{"bootcmd": "x"}}).Load()
	if err != nil || len(got.Order) != 0 || Next(got) != hw.SlotF {
		t.Errorf("Load(no order) = %v, %v, want an empty order (boots F)", got, err)
	}
}

// TestNoValidEnvNeverRepaired: with both copies bad, Load reports
// ErrCorrupt and Store writes nothing (U-Boot's default env boots F).
func TestNoValidEnvNeverRepaired(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "env.img")
	garbage := bytes.Repeat([]byte{0xA5}, 0x800)
	if err := os.WriteFile(img, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ubootenv.Open(ubootenv.Config{Copies: []ubootenv.Location{{Device: img, Size: 0x400}, {Device: img, Offset: 0x400, Size: 0x400}}})
	if err != nil {
		t.Fatal(err)
	}
	bc := New(s, WithRoot(rootWithCmdline(t, "meterupd.slot=A")))
	if _, err := bc.Load(); !errors.Is(err, ErrCorrupt) || !errors.Is(err, ubootenv.ErrNoValidCopy) {
		t.Errorf("Load = %v, want ErrCorrupt wrapping ErrNoValidCopy", err)
	}
	err = bc.Store(hw.BootState{Order: []hw.Slot{hw.SlotB}, Left: map[hw.Slot]int{hw.SlotB: 3}})
	if !errors.Is(err, ubootenv.ErrNoValidCopy) {
		t.Errorf("Store = %v, want ErrNoValidCopy", err)
	}
	if b, _ := os.ReadFile(img); !bytes.Equal(b, garbage) {
		t.Errorf("Store changed the environment although no copy was valid")
	}
}

func TestBooted(t *testing.T) {
	tests := []struct {
		cmdline string
		want    hw.Slot
		ok      bool
	}{
		{"console=ttyS0 meterupd.slot=B quiet\n", hw.SlotB, true},
		{"meterupd.slot=A meterupd.slot=F", hw.SlotF, true},
		{"console=ttyS0", "", false},
		{"meterupd.slot=C", "", false},
		{"meterupd.slot=", "", false},
		{"xmeterupd.slot=A", "", false},
	}
	for _, tt := range tests {
		got, err := New(&countingEnv{}, WithRoot(rootWithCmdline(t, tt.cmdline))).Booted()
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("Booted(%q) = %q, %v, want %q", tt.cmdline, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrUnknownBoot) {
			t.Errorf("Booted(%q) = %q, %v, want ErrUnknownBoot", tt.cmdline, got, err)
		}
	}
	if _, err := New(&countingEnv{}, WithRoot(t.TempDir())).Booted(); err == nil {
		t.Errorf("Booted without /proc/cmdline succeeded")
	}
}

func ExampleBootControl_Store() {
	env := &countingEnv{env: ubootenv.Env{"bootcmd": "run meterupd"}}
	root, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(root)
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.WriteFile(filepath.Join(root, "proc", "cmdline"), []byte("meterupd.slot=A"), 0o644)

	bc := New(env, WithRoot(root))
	// Arm a trial of B with 3 attempts, A as the way back.
	_ = bc.Store(hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 3, hw.SlotA: 3}})
	for _, k := range env.env.Names() {
		fmt.Printf("%s=%s\n", k, env.env[k])
	}
	// Output:
	// bootcmd=run meterupd
	// bootcount=0
	// bootlimit=3
	// meterupd_left_A=3
	// meterupd_left_B=3
	// meterupd_order=B A
	// upgrade_available=1
}
