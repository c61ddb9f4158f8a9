package journal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meterupd/journal/internal/flashtest"
)

// cutGeometries are small enough that a run of commits crosses several area
// switches (erase value 0xFF; write sizes 1, 4, 16, 256, 2048).
var cutGeometries = []struct {
	name         string
	size, erase  int64
	write        int64
	nand         bool
	commits, pad int
}{
	{"nor-ws1-2areas", 8 * 4096, 4096, 1, false, 120, 300},
	{"nor-ws4-4areas", 16 * 4096, 4096, 4, false, 200, 300},
	{"nor-ws16-2areas", 8 * 4096, 4096, 16, false, 120, 300},
	{"nand-ws256-2areas", 2 * 16384, 16384, 256, true, 80, 300},
	{"nand-ws2048-2areas", 2 * 128 << 10, 128 << 10, 2048, true, 140, 300},
}

var cutModes = []flashtest.CutMode{flashtest.CutBefore, flashtest.CutAfter, flashtest.CutTorn, flashtest.CutGarbage, flashtest.CutOOO}

// workload commits sv(from+1, gen) … sv(to, gen) and reports the last value
// whose Commit returned nil and the one in flight when an error stopped it.
// Each boot uses its own gen, so a record written again after a cut differs
// from the torn one (as the agent's next state would).
func workload(j *Journal, last state, to, gen, pad int) (committed, inflight state, err error) {
	committed = last
	for i := last.N + 1; i <= to; i++ {
		v := sv(i, gen, pad)
		if err := j.Commit(v); err != nil {
			return committed, v, err
		}
		committed = v
	}
	return committed, state{N: -1}, nil
}

// sv is value n of boot generation gen.
func sv(n, gen, pad int) state {
	s := st(n, pad)
	s.Slot = fmt.Sprintf("%s%d", s.Slot, gen)
	return s
}

// reboot powers the flash on, opens the journal and checks that it holds
// exactly the last committed value or the one being committed. It returns
// the journal and the loaded value.
func reboot(t *testing.T, f *flashtest.Flash, committed, inflight state) (*Journal, state) {
	t.Helper()
	if f.Violations != 0 {
		t.Fatalf("%d flash rule violations (program over unerased or misaligned)", f.Violations)
	}
	f.PowerOn()
	j, err := Open(f, Options{})
	if err != nil {
		t.Fatalf("Open after cut (committed %d, in flight %d): %v", committed.N, inflight.N, err)
	}
	got := load(t, j)
	if same(got, committed) || same(got, inflight) {
		return j, got
	}
	t.Fatalf("Load after cut = %d %q, want committed %d %q or in flight %d %q\n(-committed +got):\n%s",
		got.N, got.Slot, committed.N, committed.Slot, inflight.N, inflight.Slot, cmp.Diff(committed, got))
	return nil, state{}
}

func formatted(t *testing.T, size, erase, write int64, nand bool, pad int, seed uint64) *flashtest.Flash {
	t.Helper()
	f := flashtest.New(size, erase, write, seed)
	f.SetNAND(nand)
	if _, err := Format(f, sv(0, 0, pad), Options{}); err != nil {
		t.Fatalf("Format: %v", err)
	}
	f.PowerOn()
	return f
}

// cleanOps counts the flash operations of an uninterrupted run.
func cleanOps(t *testing.T, size, erase, write int64, nand bool, commits, pad int) int {
	t.Helper()
	f := formatted(t, size, erase, write, nand, pad, 1)
	j, err := Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := workload(j, sv(0, 0, pad), commits, 1, pad); err != nil {
		t.Fatal(err)
	}
	return f.Ops()
}

// TestCutEveryOpLinear cuts power at every flash operation k = 1…N of a run
// of commits that crosses area switches, in every cut mode (before, after,
// torn, garbage, out of order), reboots, checks the journal, and finishes the run.
// RELIABILITY.md B.3, B.4, B.7, B.8, B.9 (linear), B.10.
func TestCutEveryOpLinear(t *testing.T) {
	for _, g := range cutGeometries {
		t.Run(g.name, func(t *testing.T) {
			n := cleanOps(t, g.size, g.erase, g.write, g.nand, g.commits, g.pad)
			for _, mode := range cutModes {
				t.Run(mode.String(), func(t *testing.T) {
					for k := 1; k <= n; k++ {
						f := formatted(t, g.size, g.erase, g.write, g.nand, g.pad, uint64(k))
						j, err := Open(f, Options{})
						if err != nil {
							t.Fatal(err)
						}
						f.CutAt(k, mode)
						committed, inflight, err := workload(j, sv(0, 0, g.pad), g.commits, 1, g.pad)
						if err == nil {
							t.Fatalf("cut at op %d of %d did not fire", k, n)
						}
						if !errors.Is(err, flashtest.ErrPowerCut) {
							t.Fatalf("cut at op %d: Commit = %v, want a power cut", k, err)
						}
						j, at := reboot(t, f, committed, inflight)
						done, _, err := workload(j, at, g.commits, 2, g.pad)
						if err != nil {
							t.Fatalf("cut at op %d: finishing the run: %v", k, err)
						}
						reboot(t, f, done, done)
					}
				})
			}
		})
	}
}

// TestCutPairsSampled cuts once, reboots, and cuts again while the run
// resumes (the first commits after a cut are the recovery), at sampled pairs
// of operations. RELIABILITY.md B.9 (pairs on a subset), B.11 compound.
func TestCutPairsSampled(t *testing.T) {
	g := cutGeometries[1]
	n := cleanOps(t, g.size, g.erase, g.write, g.nand, g.commits, g.pad)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 300; i++ {
		k1 := 1 + rng.IntN(n)
		k2 := 1 + rng.IntN(8) // early in the recovery
		if i%2 == 1 {
			k2 = 1 + rng.IntN(n)
		}
		m1, m2 := cutModes[rng.IntN(len(cutModes))], cutModes[rng.IntN(len(cutModes))]
		t.Run(fmt.Sprintf("%d-%v-%d-%v", k1, m1, k2, m2), func(t *testing.T) {
			f := formatted(t, g.size, g.erase, g.write, g.nand, g.pad, uint64(i))
			j, err := Open(f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			f.CutAt(k1, m1)
			committed, inflight, _ := workload(j, sv(0, 0, g.pad), g.commits, 1, g.pad)
			j, at := reboot(t, f, committed, inflight)
			f.CutAt(k2, m2)
			committed, inflight, err = workload(j, at, g.commits, 2, g.pad)
			if err == nil {
				reboot(t, f, committed, committed)
				return
			}
			j, at = reboot(t, f, committed, inflight)
			done, _, err := workload(j, at, g.commits, 3, g.pad)
			if err != nil {
				t.Fatalf("finishing the run: %v", err)
			}
			reboot(t, f, done, done)
		})
	}
}

// TestCutDuringAreaSwitchEveryOp fills the current area so the next commit
// must switch, then cuts at every operation of that commit in every mode.
func TestCutDuringAreaSwitchEveryOp(t *testing.T) {
	for _, g := range cutGeometries {
		t.Run(g.name, func(t *testing.T) {
			// Find how many commits fill the first area.
			probe := formatted(t, g.size, g.erase, g.write, g.nand, g.pad, 1)
			j, err := Open(probe, Options{})
			if err != nil {
				t.Fatal(err)
			}
			fill := 0
			for j.cur == 0 {
				if fill > 10000 {
					t.Fatal("the first area never fills")
				}
				fill++
				if err := j.Commit(sv(fill, 1, g.pad)); err != nil {
					t.Fatal(err)
				}
			}
			fill-- // the commit before the one that switched
			for _, mode := range cutModes {
				for k := 1; ; k++ {
					f := formatted(t, g.size, g.erase, g.write, g.nand, g.pad, uint64(k))
					j, err := Open(f, Options{})
					if err != nil {
						t.Fatal(err)
					}
					before, _, err := workload(j, sv(0, 0, g.pad), fill, 1, g.pad)
					if err != nil {
						t.Fatal(err)
					}
					f.PowerOn()
					f.CutAt(k, mode)
					next := sv(fill+1, 1, g.pad)
					err = j.Commit(next)
					if err == nil {
						if k == 1 {
							t.Fatalf("%v: the switching commit did no flash operation", mode)
						}
						if j.cur == 0 {
							t.Fatalf("%v: commit %d did not switch areas", mode, fill+1)
						}
						break // every op of the switch has been cut
					}
					j, at := reboot(t, f, before, next)
					done, _, err := workload(j, at, fill+3, 2, g.pad)
					if err != nil {
						t.Fatalf("%v cut at op %d: after reboot: %v", mode, k, err)
					}
					reboot(t, f, done, done)
				}
			}
		})
	}
}

// TestFormatInterruptedAtEveryOp cuts power at every operation of a Format
// over an old journal: Open then reports a typed error or finds a record
// (the new one, or an old one the erase had not reached yet), never panics,
// and running Format again provisions the node.
func TestFormatInterruptedAtEveryOp(t *testing.T) {
	const size, es, ws = 16 * 4096, 4096, 4
	old := flashtest.New(size, es, ws, 1)
	j, err := Format(old, sv(0, 0, 50), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := workload(j, sv(0, 0, 50), 150, 1, 50); err != nil {
		t.Fatal(err)
	}
	fresh := sv(0, 9, 50)
	for _, mode := range cutModes {
		for k := 1; ; k++ {
			f := flashtest.New(size, es, ws, uint64(k))
			f.Load(old.Bytes())
			f.CutAt(k, mode)
			if _, err := Format(f, fresh, Options{}); err == nil {
				break // every op of Format has been cut
			}
			f.PowerOn()
			j, err := Open(f, Options{})
			switch {
			case errors.Is(err, ErrEmpty), errors.Is(err, ErrCorrupt), errors.Is(err, ErrForeign):
			case err != nil:
				t.Fatalf("%v cut at op %d of Format: Open = %v", mode, k, err)
			default:
				if got := load(t, j); !same(got, fresh) && got.Slot[1:] != "1" && got.N != 0 {
					t.Fatalf("%v cut at op %d of Format: Load = %d %q: neither new nor old", mode, k, got.N, got.Slot)
				}
			}
			if _, err := Format(f, fresh, Options{}); err != nil {
				t.Fatalf("Format again: %v", err)
			}
			j, err = Open(f, Options{})
			if err != nil {
				t.Fatalf("Open after Format again: %v", err)
			}
			if got := load(t, j); !same(got, fresh) {
				t.Fatalf("%v cut at op %d: after Format again Load = %d %q, want the fresh record", mode, k, got.N, got.Slot)
			}
			if f.Violations != 0 {
				t.Fatalf("%d flash rule violations", f.Violations)
			}
		}
	}
}
