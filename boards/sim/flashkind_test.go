package sim

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/boards/hw"
)

// TestFlashKinds: the program rule of each kind of part, seen through the
// board (the logical view) and in the partition file (the physical bytes).
func TestFlashKinds(t *testing.T) {
	pat := func(v byte, n int) []byte { return bytes.Repeat([]byte{v}, n) }
	type op struct {
		erase   bool
		p       []byte
		wantErr error
	}
	tests := []struct {
		kind FlashKind
		name string
		ops  []op
		want []byte // the first 32 bytes, as the board presents them
		raw  []byte // the first 32 bytes of journal.bin
	}{
		{NORErasedFF, "erased", nil, ff(32), ff(32)},
		{NORErased00, "erased", nil, ff(32), pat(0, 32)},
		{NAND, "erased", nil, ff(32), ff(32)},
		{NORErasedFF, "program twice, clearing more bits", []op{{p: pat(0xF0, 16)}, {p: pat(0x30, 16)}}, append(pat(0x30, 16), ff(16)...), append(pat(0x30, 16), ff(16)...)},
		{NORErased00, "program twice, setting more bits", []op{{p: pat(0xF0, 16)}, {p: pat(0x30, 16)}}, append(pat(0x30, 16), ff(16)...), append(pat(0xCF, 16), pat(0, 16)...)},
		{NORErased00, "a 0 over a 1 physically rejected", []op{{p: pat(0x0F, 16)}, {p: pat(0x1F, 16), wantErr: hw.ErrNotErased}}, append(pat(0x0F, 16), ff(16)...), append(pat(0xF0, 16), pat(0, 16)...)},
		{NAND, "a page programmed once", []op{{p: pat(0x5A, 16)}}, append(pat(0x5A, 16), ff(16)...), append(pat(0x5A, 16), ff(16)...)},
		{NAND, "second program of a page rejected even when it only clears bits", []op{{p: pat(0xF0, 16)}, {p: pat(0x30, 16), wantErr: hw.ErrNotErased}}, append(pat(0xF0, 16), ff(16)...), append(pat(0xF0, 16), ff(16)...)},
		{NAND, "a page programmed with 0xFF cannot be programmed again", []op{{p: ff(16)}, {p: pat(0x30, 16), wantErr: hw.ErrNotErased}}, ff(32), ff(32)},
		{NAND, "erase makes a page programmable again", []op{{p: pat(0xF0, 16)}, {erase: true}, {p: pat(0x30, 16)}}, append(pat(0x30, 16), ff(16)...), append(pat(0x30, 16), ff(16)...)},
		{NORErased00, "erase", []op{{p: pat(0x12, 32)}, {erase: true}}, ff(32), pat(0, 32)},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+"/"+tt.name, func(t *testing.T) {
			g := smallGeometry()
			g.Flash = tt.kind
			dir := newNode(t, g)
			b := openNode(t, dir)
			f := part(t, b, hw.PartJournal)
			for i, o := range tt.ops {
				var err error
				if o.erase {
					err = f.Erase(0, g.EraseSize)
				} else {
					_, err = f.WriteAt(o.p, 0)
				}
				if !errors.Is(err, o.wantErr) || (err != nil && o.wantErr == nil) {
					t.Errorf("op %d: err = %v, want %v", i, err, o.wantErr)
				}
			}
			got := make([]byte, 32)
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("board view = % x\nwant         % x", got, tt.want)
			}
			raw, err := os.ReadFile(filepath.Join(dir, hw.PartJournal+partExt))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw[:32], tt.raw) {
				t.Errorf("journal.bin = % x\nwant          % x", raw[:32], tt.raw)
			}
		})
	}
}

// TestFlashKindTornProgram00: on a part erased to 0x00 a torn program
// leaves, physically, only bits set that the program was to set.
func TestFlashKindTornProgram00(t *testing.T) {
	g := smallGeometry()
	g.Flash = NORErased00
	dir := newNode(t, g)
	p := bytes.Repeat([]byte{0x0F, 0x3C, 0xA5, 0x00}, 64)
	for seed := range uint64(20) {
		b, err := Open(dir, WithFaults(&Faults{CutAt: 1, Mode: CutTorn, Rand: rand.New(rand.NewPCG(seed, 1))}))
		if err != nil {
			t.Fatal(err)
		}
		f := b.parts[hw.PartJournal]
		if _, err := f.WriteAt(p, 0); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("torn program: %v", err)
		}
		b.Close()
		raw, err := os.ReadFile(filepath.Join(dir, hw.PartJournal+partExt))
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range raw[:len(p)] {
			if want := ^p[i]; c&^want != 0 {
				t.Fatalf("seed %d: byte %d is %#02x: sets bits the program (physical %#02x) does not", seed, i, c, want)
			}
		}
		b = openNode(t, dir)
		if err := b.parts[hw.PartJournal].Erase(0, g.EraseSize); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
}

// TestBoardJSONDefaultKindOmitted: a node of the default kind writes the
// board.json earlier builds read (they refuse unknown fields); other kinds
// name themselves, and an unknown kind is refused.
func TestBoardJSONDefaultKindOmitted(t *testing.T) {
	for _, k := range []FlashKind{"", NORErasedFF} {
		g := DefaultGeometry()
		g.Flash = k
		if s := string(encodeState(g)); strings.Contains(s, "flash") {
			t.Errorf("kind %q: board.json names the flash kind:\n%s", k, s)
		}
	}
	for _, k := range []FlashKind{NORErased00, NAND} {
		g := DefaultGeometry()
		g.Flash = k
		got, err := decodeState(encodeState(g))
		if err != nil || got.Kind() != k {
			t.Errorf("kind %s: decoded %q, %v", k, got.Flash, err)
		}
	}
	g := DefaultGeometry()
	g.Flash = "eeprom"
	if err := g.Validate(); !errors.Is(err, ErrBadGeometry) {
		t.Errorf("unknown kind: %v", err)
	}
}

// TestCutModeNames: the sim's cut modes are flashfake's first three.
func TestCutModeNames(t *testing.T) {
	for _, m := range []CutMode{CutBefore, CutAfter, CutTorn} {
		if got, want := m.String(), []string{"before", "after", "torn"}[m]; got != want {
			t.Errorf("CutMode(%d) = %q, want %q", int(m), got, want)
		}
	}
}
