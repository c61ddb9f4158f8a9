package ubootboot

import (
	"reflect"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/ubootenv"
	"meterupd/boards/ubootenv/ubootenvtest"
)

// TestArmTrialPowerCut arms a trial on redundant NOR and NAND
// environments and cuts power before, after and inside every flash
// operation: afterwards the boot state is the old one (A committed,
// counting off) or the new one (B first, upgrade_available=1,
// bootcount=0), never B selected with counting off.
func TestArmTrialPowerCut(t *testing.T) {
	old := hw.BootState{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: 3}}
	arm := hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 3, hw.SlotA: 3}}
	flashes := map[string]func() *ubootenvtest.Flash{
		"nor":  func() *ubootenvtest.Flash { return ubootenvtest.NewNOR(4*0x1000, 0x1000) },
		"nand": func() *ubootenvtest.Flash { return ubootenvtest.NewNAND(4*0x1000, 0x1000, 512) },
	}
	root := rootWithCmdline(t, "meterupd.slot=A")
	open := func(t *testing.T, f *ubootenvtest.Flash) *BootControl {
		t.Helper()
		s, err := ubootenv.NewFlash(0x1000, []ubootenv.FlashCopy{{Flash: f, Offset: 0}, {Flash: f, Offset: 0x2000}})
		if err != nil {
			t.Fatal(err)
		}
		return New(s, WithRoot(root))
	}
	for name, mk := range flashes {
		t.Run(name, func(t *testing.T) {
			base := mk()
			s, err := ubootenv.NewFlash(0x1000, []ubootenv.FlashCopy{{Flash: base, Offset: 0}, {Flash: base, Offset: 0x2000}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Save(ubootenv.Env{"bootcmd": "run meterupd"}); err != nil {
				t.Fatal(err)
			}
			if err := open(t, base).Store(old); err != nil {
				t.Fatal(err)
			}
			probe := base.Clone()
			if err := open(t, probe).Store(arm); err != nil {
				t.Fatal(err)
			}
			checked := 0
			for op := 1; op <= len(probe.OpSizes); op++ {
				size := probe.OpSizes[op-1]
				for _, torn := range []int64{-2, -1, 0, 1, 4, 5, size / 2, size - 1} {
					if torn >= size {
						continue
					}
					f := base.Clone()
					f.CutOp, f.TornAt = op, max(torn, 0)
					switch torn {
					case -2:
						f.Mode = ubootenvtest.CutBefore
					case -1:
						f.Mode = ubootenvtest.CutAfter
					default:
						f.Mode = ubootenvtest.CutTorn
					}
					_ = open(t, f).Store(arm)
					r := f.Clone()
					s, err := ubootenv.NewFlash(0x1000, []ubootenv.FlashCopy{{Flash: r, Offset: 0}, {Flash: r, Offset: 0x2000}})
					if err != nil {
						t.Fatal(err)
					}
					env, err := s.Load()
					if err != nil {
						t.Fatalf("op %d %v %d: Load: %v", op, f.Mode, torn, err)
					}
					got, err := StateFromEnv(env)
					if err != nil {
						t.Fatalf("op %d %v %d: StateFromEnv: %v", op, f.Mode, torn, err)
					}
					switch {
					case reflect.DeepEqual(got, old):
						if env[VarUpgradeAvailable] != "0" {
							t.Fatalf("op %d: old state with upgrade_available=%q", op, env[VarUpgradeAvailable])
						}
					case reflect.DeepEqual(got, arm):
						if env[VarUpgradeAvailable] != "1" || env[VarBootCount] != "0" || env[VarBootLimit] != "3" {
							t.Fatalf("op %d: trial armed with upgrade_available=%q bootcount=%q bootlimit=%q",
								op, env[VarUpgradeAvailable], env[VarBootCount], env[VarBootLimit])
						}
					default:
						t.Fatalf("op %d %v %d: state after cut = %v, want %v or %v", op, f.Mode, torn, got, old, arm)
					}
					checked++
				}
			}
			t.Logf("%s: %d cuts checked", name, checked)
		})
	}
}
