package sim

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"meterupd/boards/hw"
)

func state(order string, left ...int) hw.BootState {
	s := hw.BootState{Left: map[hw.Slot]int{}}
	for i, c := range order {
		s.Order = append(s.Order, hw.Slot(string(c)))
		if i < len(left) {
			s.Left[hw.Slot(string(c))] = left[i]
		}
	}
	return s
}

// programSlot erases slot s and programs img at its start.
func programSlot(t testing.TB, b *Board, s hw.Slot, img []byte) {
	t.Helper()
	f := part(t, b, string(s))
	if err := f.Erase(0, f.Size()); err != nil {
		t.Fatal(err)
	}
	ws := int(f.WriteSize())
	padded := append(img[:len(img):len(img)], ff((ws-len(img)%ws)%ws)...)
	if _, err := f.WriteAt(padded, 0); err != nil {
		t.Fatal(err)
	}
}

func TestBootStateRoundTrip(t *testing.T) {
	tests := []hw.BootState{
		state("A", 3),
		state("BA", 1, 3),
		state("BAF", 7, 0, 2),
		state(""),
		{Order: []hw.Slot{"B"}, Left: map[hw.Slot]int{"A": 2}},
	}
	for _, s := range tests {
		rec, err := encodeBootState(s, 41)
		if err != nil {
			t.Fatalf("encode(%+v): %v", s, err)
		}
		got, seq, err := decodeBootState(rec)
		if err != nil || seq != 41 || !cmp.Equal(got, s, eqEmpty) {
			t.Errorf("decode(encode(%+v)) = %+v, %d, %v", s, got, seq, err)
		}
	}
	bad := []hw.BootState{
		state("C", 1),
		state("AA", 1, 1),
		state("ABFA"),
		state("A", 8),
		state("A", -1),
		{Left: map[hw.Slot]int{"X": 1}},
	}
	for _, s := range bad {
		if _, err := encodeBootState(s, 1); !errors.Is(err, ErrBadBootState) {
			t.Errorf("encode(%+v): err = %v, want ErrBadBootState", s, err)
		}
	}
}

func TestBootStoreLoad(t *testing.T) {
	b := openNode(t, newNode(t, smallGeometry()))
	c := b.Boot()
	for i, s := range []hw.BootState{state("BA", 3, 3), state("BA", 2, 3), state("AB", 3, 0), state("A", 1)} {
		if err := c.Store(s); err != nil {
			t.Fatalf("Store %d: %v", i, err)
		}
		got, err := c.Load()
		if err != nil || !cmp.Equal(got, s, eqEmpty) {
			t.Errorf("Load after Store %d = %+v, %v, want %+v", i, got, err, s)
		}
	}
	if err := c.Store(state("Q", 1)); !errors.Is(err, ErrBadBootState) {
		t.Errorf("Store(bad): err = %v, want ErrBadBootState", err)
	}
	if got, _ := c.Load(); !cmp.Equal(got, state("A", 1), eqEmpty) {
		t.Errorf("Load after rejected Store = %+v, want the previous state", got)
	}
}

func TestBootLoadPicksNewestValidCopy(t *testing.T) {
	g := smallGeometry()
	seqWrap := uint32(0xFFFFFFFF)
	tests := []struct {
		name       string
		copy0      []byte
		copy1      []byte
		want       hw.BootState
		wantCorupt bool
	}{
		{"only copy 0", mustRec(t, state("A", 3), 5), nil, state("A", 3), false},
		{"only copy 1", nil, mustRec(t, state("B", 2), 5), state("B", 2), false},
		{"copy 1 newer", mustRec(t, state("A", 3), 5), mustRec(t, state("B", 2), 6), state("B", 2), false},
		{"copy 0 newer", mustRec(t, state("A", 3), 7), mustRec(t, state("B", 2), 6), state("A", 3), false},
		{"sequence wraps", mustRec(t, state("A", 3), seqWrap), mustRec(t, state("B", 2), 0), state("B", 2), false},
		{"equal sequence: copy 0", mustRec(t, state("A", 3), 9), mustRec(t, state("B", 2), 9), state("A", 3), false},
		{"newer copy bit-flipped", mustRec(t, state("A", 3), 5), flip(mustRec(t, state("B", 2), 6), 16), state("A", 3), false},
		{"both erased", nil, nil, hw.BootState{}, true},
		{"both damaged", flip(mustRec(t, state("A", 3), 5), 0), flip(mustRec(t, state("B", 2), 6), 21), hw.BootState{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openNode(t, newNode(t, g))
			f := part(t, b, PartBootctl)
			if err := f.Erase(0, f.Size()); err != nil {
				t.Fatal(err)
			}
			for i, rec := range [][]byte{tt.copy0, tt.copy1} {
				if rec != nil {
					if _, err := f.WriteAt(pad(rec, g.WriteSize), int64(i)*g.EraseSize); err != nil {
						t.Fatal(err)
					}
				}
			}
			got, err := b.Boot().Load()
			if tt.wantCorupt {
				if !errors.Is(err, ErrBootCorrupt) {
					t.Errorf("Load() = %+v, %v, want ErrBootCorrupt", got, err)
				}
				return
			}
			if err != nil || !cmp.Equal(got, tt.want, eqEmpty) {
				t.Errorf("Load() = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func mustRec(t testing.TB, s hw.BootState, seq uint32) []byte {
	t.Helper()
	r, err := encodeBootState(s, seq)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func flip(p []byte, off int) []byte { p[off] ^= 0x04; return p }

func pad(p []byte, unit int64) []byte {
	n := (int64(len(p)) + unit - 1) / unit * unit
	return append(p[:len(p):len(p)], ff(int(n)-len(p))...)
}

func TestPowerOn(t *testing.T) {
	g := smallGeometry()
	good := func(v string) []byte { return Image(20<<10, v) }
	corrupt := func() []byte { img := Image(20<<10, "v2"); img[HeaderSize+100] ^= 1; return img }
	tests := []struct {
		name      string
		state     *hw.BootState // nil: leave the bootctl partition erased (corrupt)
		slotB     []byte        // nil: B erased
		want      hw.Slot
		wantState hw.BootState // ignored when state is nil
	}{
		{"factory state", ptr(state("A", 3)), nil, "A", state("A", 2)},
		{"trial of B", ptr(state("BA", 1, 3)), good("v2"), "B", state("BA", 0, 3)},
		{"trial used up: back to A", ptr(state("BA", 0, 3)), good("v2"), "A", state("BA", 0, 2)},
		{"B unbootable consumes its attempts", ptr(state("BA", 3, 3)), Image(20<<10, "v2", MarkUnbootable), "A", state("BA", 0, 2)},
		{"B erased consumes its attempts", ptr(state("BA", 2, 3)), nil, "A", state("BA", 0, 2)},
		{"B with bad checksum consumes its attempts", ptr(state("BA", 1, 3)), corrupt(), "A", state("BA", 0, 2)},
		{"unhealthy still boots", ptr(state("BA", 1, 3)), Image(20<<10, "v2", MarkUnhealthy), "B", state("BA", 0, 3)},
		{"nothing left: F", ptr(state("BA", 0, 0)), good("v2"), "F", state("BA", 0, 0)},
		{"only unbootable B: F", ptr(state("B", 3)), Image(20<<10, "v2", MarkUnbootable), "F", state("B", 0)},
		{"empty order: F", ptr(state("")), good("v2"), "F", state("")},
		{"slot outside order never boots", ptr(hw.BootState{Order: []hw.Slot{"A"}, Left: map[hw.Slot]int{"B": 3}}), good("v2"), "F", hw.BootState{Order: []hw.Slot{"A"}, Left: map[hw.Slot]int{"B": 3}}},
		{"corrupt boot control: F", nil, good("v2"), "F", hw.BootState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newNode(t, g)
			if err := WriteFactory(dir, good("v1")); err != nil {
				t.Fatal(err)
			}
			b := openNode(t, dir)
			bc := part(t, b, PartBootctl)
			if err := bc.Erase(0, bc.Size()); err != nil {
				t.Fatal(err)
			}
			if tt.state != nil {
				if err := b.Boot().Store(*tt.state); err != nil {
					t.Fatal(err)
				}
			}
			if tt.slotB != nil {
				programSlot(t, b, "B", tt.slotB)
			}
			got, err := b.PowerOn()
			if err != nil || got != tt.want {
				t.Fatalf("PowerOn() = %q, %v, want %q", got, err, tt.want)
			}
			if booted, err := b.Boot().Booted(); booted != tt.want || err != nil {
				t.Errorf("Booted() = %q, %v, want %q", booted, err, tt.want)
			}
			st, err := b.Boot().Load()
			if tt.state == nil {
				if !errors.Is(err, ErrBootCorrupt) {
					t.Errorf("Load() after PowerOn on corrupt boot control = %+v, %v: the bootloader must not write a state", st, err)
				}
				return
			}
			if err != nil || !cmp.Equal(st, tt.wantState, eqEmpty) {
				t.Errorf("state after PowerOn = %+v, %v, want %+v", st, err, tt.wantState)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestRebootAndReadings(t *testing.T) {
	g := smallGeometry()
	dir := newNode(t, g)
	if err := WriteFactory(dir, Image(20<<10, "v1")); err != nil {
		t.Fatal(err)
	}
	b := openNode(t, dir)
	if err := b.Readings(); !errors.Is(err, ErrNotBooted) {
		t.Errorf("Readings() before boot: err = %v, want ErrNotBooted", err)
	}
	if err := b.Reboot(); !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("Reboot() = %v, want ErrRebooted", err)
	}
	if err := b.Readings(); err != nil {
		t.Errorf("Readings() on healthy A = %v", err)
	}
	programSlot(t, b, "B", Image(20<<10, "v2", MarkUnhealthy))
	if err := b.Boot().Store(state("BA", 1, 3)); err != nil {
		t.Fatal(err)
	}
	if err := b.Reboot(); !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("Reboot() = %v, want ErrRebooted", err)
	}
	if s, _ := b.Boot().Booted(); s != "B" {
		t.Fatalf("booted %q, want B", s)
	}
	if err := b.Readings(); !errors.Is(err, ErrUnhealthy) {
		t.Errorf("Readings() on unhealthy B = %v, want ErrUnhealthy", err)
	}
	// The trial is over: the next power-on goes back to A.
	if err := b.Reboot(); !errors.Is(err, hw.ErrRebooted) {
		t.Fatal(err)
	}
	if s, _ := b.Boot().Booted(); s != "A" {
		t.Errorf("booted %q after the trial, want A", s)
	}
}

// TestBootStoreAtomicUnderCut cuts the power at every operation of a Store
// (erase, program) in every mode, many torn extents: the boot control then
// loads the old or the new state, never garbage and never nothing.
func TestBootStoreAtomicUnderCut(t *testing.T) {
	g := smallGeometry()
	g.WriteSize = 1 // byte-wise torn programs of the record itself
	history := []hw.BootState{state("A", 3), state("BA", 3, 3), state("BA", 2, 3), state("AB", 3, 0)}
	for _, mode := range []CutMode{CutBefore, CutAfter, CutTorn} {
		for prev := 0; prev < len(history)-1; prev++ { // how many Stores came before: both copies in play
			for op := int64(1); op <= 2; op++ {
				seeds := 1
				if mode == CutTorn {
					seeds = 40
				}
				for seed := range seeds {
					name := fmt.Sprintf("%v/after %d stores/op %d/seed %d", mode, prev, op, seed)
					dir := newNode(t, g)
					b := openNode(t, dir)
					for _, s := range history[1 : prev+1] {
						if err := b.Boot().Store(s); err != nil {
							t.Fatal(err)
						}
					}
					b.Close()
					old, next := history[prev], history[prev+1]
					f := &Faults{CutAt: op, Mode: mode, Rand: newRand(uint64(seed))}
					b = openNode(t, dir, WithFaults(f))
					err := b.Boot().Store(next)
					if !errors.Is(err, ErrPowerCut) || !b.Dead() {
						t.Fatalf("%s: Store = %v, dead %v, want ErrPowerCut", name, err, b.Dead())
					}
					if err := b.Boot().Store(next); !errors.Is(err, ErrPowerCut) {
						t.Errorf("%s: Store after cut = %v, want ErrPowerCut", name, err)
					}
					b.Close()
					b = openNode(t, dir)
					got, err := b.Boot().Load()
					if err != nil || !(cmp.Equal(got, old, eqEmpty) || cmp.Equal(got, next, eqEmpty)) {
						t.Fatalf("%s: Load after cut = %+v, %v, want %+v or %+v", name, got, err, old, next)
					}
					switch {
					case op == 1, mode == CutBefore: // the erase of the older copy, or nothing, happened
						if !cmp.Equal(got, old, eqEmpty) {
							t.Errorf("%s: Load = %+v, want old %+v", name, got, old)
						}
					case mode == CutAfter && op == 2:
						if !cmp.Equal(got, next, eqEmpty) {
							t.Errorf("%s: Load = %+v, want new %+v", name, got, next)
						}
					}
					// The node recovers: a later Store works and wins.
					if err := b.Boot().Store(next); err != nil {
						t.Fatalf("%s: Store after reopen: %v", name, err)
					}
					if got, _ := b.Boot().Load(); !cmp.Equal(got, next, eqEmpty) {
						t.Errorf("%s: Load after recovery = %+v, want %+v", name, got, next)
					}
					b.Close()
				}
			}
		}
	}
}

// TestPowerOnCutAtEveryOp cuts the bootloader's own writes: B is
// unbootable and burns its attempts, so PowerOn stores several times. After
// a cut at any operation, the next power-on still ends on a bootable slot
// with a valid boot state, and B never gains attempts.
func TestPowerOnCutAtEveryOp(t *testing.T) {
	g := smallGeometry()
	for _, mode := range []CutMode{CutBefore, CutAfter, CutTorn} {
		for op := int64(1); ; op++ {
			dir := newNode(t, g)
			if err := WriteFactory(dir, Image(20<<10, "v1")); err != nil {
				t.Fatal(err)
			}
			b := openNode(t, dir)
			programSlot(t, b, "B", Image(20<<10, "v2", MarkUnbootable))
			if err := b.Boot().Store(state("BA", 3, 3)); err != nil {
				t.Fatal(err)
			}
			b.Close()
			b = openNode(t, dir, WithFaults(&Faults{CutAt: op, Mode: mode, Rand: newRand(uint64(op))}))
			s, err := b.PowerOn()
			b.Close()
			if err == nil {
				if s != "A" {
					t.Errorf("%v: PowerOn without cut = %q, want A", mode, s)
				}
				if op < 7 { // 3 stores for B, 1 for A: 8 ops
					t.Errorf("%v: PowerOn finished before op %d", mode, op)
				}
				break
			}
			if !errors.Is(err, ErrPowerCut) {
				t.Fatalf("%v op %d: PowerOn = %v, want ErrPowerCut", mode, op, err)
			}
			b = openNode(t, dir)
			if _, err := b.Boot().Booted(); !errors.Is(err, ErrNotBooted) {
				t.Errorf("%v op %d: Booted() after a cut in the bootloader = %v, want ErrNotBooted", mode, op, err)
			}
			s, err = b.PowerOn()
			if err != nil || s != "A" {
				t.Errorf("%v op %d: PowerOn after cut = %q, %v, want A", mode, op, s, err)
			}
			st, err := b.Boot().Load()
			if err != nil || st.Left["B"] != 0 || st.Left["A"] < 1 {
				t.Errorf("%v op %d: state after recovery = %+v, %v", mode, op, st, err)
			}
			b.Close()
			if op > 20 {
				t.Fatalf("%v: PowerOn never finished", mode)
			}
		}
	}
}

// eqEmpty treats a nil and an empty Order or Left as equal.
var eqEmpty = cmpopts.EquateEmpty()

// TestPowerOnReadFlips: a bit that reads wrong in B's body (a worn cell)
// fails the image CRC, so B does not come up; one in the newest boot
// control copy makes the bootloader use the older copy.
func TestPowerOnReadFlips(t *testing.T) {
	g := smallGeometry()
	g.WriteSize = 1 // NOR
	tests := []struct {
		name  string
		flips map[string][]int64
		want  hw.Slot
	}{
		{"no flip", nil, "B"},
		{"flip in B's body", map[string][]int64{"B": {HeaderSize + 5000}}, "A"},
		{"flip in the newest boot copy", map[string][]int64{PartBootctl: {g.EraseSize + 13}}, "A"},
	}
	readErr := []struct {
		name   string
		blocks []int64
		want   hw.Slot
	}{
		{"newest boot copy unreadable", []int64{1}, "A"},
		{"both boot copies unreadable", []int64{0, 1}, "F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newNode(t, g)
			if err := WriteFactory(dir, Image(20<<10, "v1")); err != nil {
				t.Fatal(err)
			}
			b := openNode(t, dir)
			programSlot(t, b, "B", Image(20<<10, "v2"))
			// Copy 0 holds the factory state; the trial goes to copy 1.
			if err := b.Boot().Store(state("BA", 1, 3)); err != nil {
				t.Fatal(err)
			}
			b.Close()
			b = openNode(t, dir, WithFaults(&Faults{FlipReads: tt.flips}))
			if got, err := b.PowerOn(); got != tt.want || err != nil {
				t.Errorf("PowerOn() = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
	for _, tt := range readErr {
		t.Run(tt.name, func(t *testing.T) {
			dir := newNode(t, g)
			if err := WriteFactory(dir, Image(20<<10, "v1")); err != nil {
				t.Fatal(err)
			}
			b := openNode(t, dir)
			programSlot(t, b, "B", Image(20<<10, "v2"))
			if err := b.Boot().Store(state("BA", 1, 3)); err != nil {
				t.Fatal(err)
			}
			b.Close()
			b = openNode(t, dir, WithFaults(&Faults{ReadErrBlocks: map[string][]int64{PartBootctl: tt.blocks}}))
			if got, err := b.PowerOn(); got != tt.want || err != nil {
				t.Errorf("PowerOn() = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}
