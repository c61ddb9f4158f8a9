package sim

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"meterupd/boards/hw"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x51)) }

// prepared returns a node whose journal holds a known pattern in its first
// two blocks (so erases and programs have something to change), and the
// pattern.
func prepared(t *testing.T, g Geometry) (string, []byte) {
	t.Helper()
	dir := newNode(t, g)
	b := openNode(t, dir)
	j := part(t, b, hw.PartJournal)
	pat := make([]byte, 2*g.EraseSize)
	r := newRand(7)
	for i := range pat {
		pat[i] = byte(r.Uint32())
	}
	if _, err := j.WriteAt(pat, 0); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return dir, pat
}

func TestFaultCut(t *testing.T) {
	g := smallGeometry()
	es := int(g.EraseSize)
	// Program op: clear bits of block 2 (erased) with p. Erase op: blocks 0 and 1.
	prog := bytes.Repeat([]byte{0x00, 0x3C, 0xA5, 0x0F}, es/4)
	tests := []struct {
		name  string
		erase bool
		mode  CutMode
		// check inspects the journal after the cut; before is its content
		// before the op, after what a completed op would leave.
		check func(t *testing.T, got, before, after []byte)
	}{
		{"program before", false, CutBefore, same},
		{"program after", false, CutAfter, func(t *testing.T, got, _, after []byte) { same(t, got, after, nil) }},
		{"program torn", false, CutTorn, tornProgram},
		{"erase before", true, CutBefore, same},
		{"erase after", true, CutAfter, func(t *testing.T, got, _, after []byte) { same(t, got, after, nil) }},
		{"erase torn", true, CutTorn, func(t *testing.T, got, before, after []byte) { tornErase(t, got, before, es) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			variants := 0
			seen := map[string]bool{}
			for seed := range 30 {
				dir, _ := prepared(t, g)
				b := openNode(t, dir, WithFaults(&Faults{CutAt: 1, Mode: tt.mode, Rand: newRand(uint64(seed))}))
				j := part(t, b, hw.PartJournal)
				before := readAll(t, j)
				after := bytes.Clone(before)
				var err error
				if tt.erase {
					copy(after, ff(2*es))
					err = j.Erase(0, 2*g.EraseSize)
				} else {
					copy(after[2*es:], prog)
					_, err = j.WriteAt(prog, 2*g.EraseSize)
				}
				if !errors.Is(err, ErrPowerCut) || !b.Dead() {
					t.Fatalf("op = %v, Dead() = %v, want ErrPowerCut and dead", err, b.Dead())
				}
				got := readAll(t, j) // reads still work
				tt.check(t, got, before, after)
				if !seen[string(got)] {
					seen[string(got)] = true
					variants++
				}
				// Dead: every flash op fails, on every partition, and changes nothing.
				if err := j.Erase(0, g.EraseSize); !errors.Is(err, ErrPowerCut) {
					t.Errorf("Erase after cut = %v, want ErrPowerCut", err)
				}
				if _, err := part(t, b, hw.PartCommon).WriteAt(make([]byte, 16), 0); !errors.Is(err, ErrPowerCut) {
					t.Errorf("WriteAt after cut = %v, want ErrPowerCut", err)
				}
				if err := b.Boot().Store(state("A", 1)); !errors.Is(err, ErrPowerCut) {
					t.Errorf("Boot().Store after cut = %v, want ErrPowerCut", err)
				}
				if !bytes.Equal(readAll(t, j), got) {
					t.Error("flash changed after the cut")
				}
				// Reopened, the board works again.
				b.Close()
				b = openNode(t, dir)
				if err := part(t, b, hw.PartJournal).Erase(0, g.JournalSize); err != nil {
					t.Errorf("Erase after reopen: %v", err)
				}
			}
			if tt.mode == CutTorn && variants < 10 {
				t.Errorf("30 torn cuts gave %d distinct results: the tear is not random", variants)
			}
		})
	}
}

func same(t *testing.T, got, before, _ []byte) {
	t.Helper()
	if !bytes.Equal(got, before) {
		t.Errorf("flash content differs from the expected one at byte %d", firstDiff(got, before))
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

// tornProgram checks a torn program: a prefix of the new bytes, one byte
// between old and new (some of its bits cleared), then the old bytes.
func tornProgram(t *testing.T, got, before, after []byte) {
	t.Helper()
	i := firstDiff(got, after)
	if i == len(got) {
		return // the tear fell on the last byte and cleared all its bits
	}
	if g, o, n := got[i], before[i], after[i]; g&^o != 0 || n&^g != 0 {
		t.Errorf("torn byte %d = %#02x: not between old %#02x and new %#02x", i, g, o, n)
	}
	if !bytes.Equal(got[i+1:], before[i+1:]) {
		t.Errorf("bytes after the tear at %d changed", i)
	}
}

// tornErase checks a torn erase: whole blocks erased, then one block with
// each byte erased or old, then old blocks.
func tornErase(t *testing.T, got, before []byte, es int) {
	t.Helper()
	blk := 0
	for blk*es < len(got) && bytes.Equal(got[blk*es:(blk+1)*es], ff(es)) {
		blk++
	}
	if blk >= 2 {
		t.Errorf("torn erase of 2 blocks erased %d whole blocks", blk)
		return
	}
	for i := blk * es; i < (blk+1)*es; i++ {
		if got[i] != 0xFF && got[i] != before[i] {
			t.Fatalf("byte %d in the tear block = %#02x: neither erased nor old %#02x", i, got[i], before[i])
		}
	}
	if !bytes.Equal(got[(blk+1)*es:], before[(blk+1)*es:]) {
		t.Errorf("blocks after the tear block %d changed", blk)
	}
}

func TestFaultBadBlocks(t *testing.T) {
	g := smallGeometry()
	es := g.EraseSize
	f := &Faults{BadBlocks: map[string][]int64{hw.PartJournal: {1}, "B": {0}}}
	tests := []struct {
		name    string
		do      func(b *Board) error
		wantErr error
	}{
		{"erase bad block", func(b *Board) error { return part(t, b, hw.PartJournal).Erase(es, es) }, hw.ErrBadBlock},
		{"erase range over bad block", func(b *Board) error { return part(t, b, hw.PartJournal).Erase(0, 3*es) }, hw.ErrBadBlock},
		{"program in bad block", func(b *Board) error {
			_, err := part(t, b, hw.PartJournal).WriteAt(make([]byte, 16), es+32)
			return err
		}, hw.ErrBadBlock},
		{"bad block on slot", func(b *Board) error { _, err := part(t, b, "B").WriteAt(make([]byte, 16), 0); return err }, hw.ErrBadBlock},
		{"good block next to it", func(b *Board) error { return part(t, b, hw.PartJournal).Erase(2*es, es) }, nil},
		{"other partition", func(b *Board) error { return part(t, b, hw.PartCommon).Erase(es, es) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := prepared(t, g)
			b := openNode(t, dir, WithFaults(f))
			before := readAll(t, part(t, b, hw.PartJournal))
			err := tt.do(b)
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && !bytes.Equal(readAll(t, part(t, b, hw.PartJournal)), before) {
				t.Error("a failed bad-block op changed the flash")
			}
			if b.Dead() {
				t.Error("a bad block killed the board")
			}
		})
	}
}

func TestFaultIOError(t *testing.T) {
	g := smallGeometry()
	for _, persistent := range []bool{false, true} {
		dir, _ := prepared(t, g)
		b := openNode(t, dir, WithFaults(&Faults{IOErrAt: 2, IOErrPersistent: persistent}))
		j := part(t, b, hw.PartJournal)
		before := readAll(t, j)
		var errs []error
		for i := range 4 {
			errs = append(errs, j.Erase(int64(i)*g.EraseSize, g.EraseSize))
		}
		want := []error{nil, ErrIO, nil, nil}
		if persistent {
			want = []error{nil, ErrIO, ErrIO, ErrIO}
		}
		for i := range errs {
			if !errors.Is(errs[i], want[i]) || (errs[i] != nil && want[i] == nil) {
				t.Errorf("persistent=%v: op %d = %v, want %v", persistent, i+1, errs[i], want[i])
			}
		}
		got := readAll(t, j)
		if !bytes.Equal(got[g.EraseSize:2*g.EraseSize], before[g.EraseSize:2*g.EraseSize]) {
			t.Errorf("persistent=%v: the failed erase changed block 1", persistent)
		}
		if !bytes.Equal(got[:g.EraseSize], ff(int(g.EraseSize))) {
			t.Errorf("persistent=%v: op 1 was not done", persistent)
		}
		if b.Dead() {
			t.Errorf("persistent=%v: an I/O error killed the board", persistent)
		}
	}
}

func TestFaultFlipReads(t *testing.T) {
	g := smallGeometry()
	dir, pat := prepared(t, g)
	flips := []int64{0, 9, 4097}
	b := openNode(t, dir, WithFaults(&Faults{FlipReads: map[string][]int64{hw.PartJournal: flips}}))
	got := readAll(t, part(t, b, hw.PartJournal))
	want := bytes.Clone(pat)
	for _, o := range flips {
		want[o] ^= 1 << (o % 8)
	}
	if !bytes.Equal(got[:len(want)], want) {
		t.Errorf("read differs from the flipped pattern at byte %d", firstDiff(got, want))
	}
	// A read of a sub-range sees the flip at its own offset.
	p := make([]byte, 4)
	part(t, b, hw.PartJournal).ReadAt(p, 4096)
	if p[1] != pat[4097]^(1<<(4097%8)) {
		t.Errorf("ReadAt(4096)[1] = %#02x, want flipped %#02x", p[1], pat[4097]^(1<<(4097%8)))
	}
	stored, err := os.ReadFile(filepath.Join(dir, "journal.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored[:len(pat)], pat) {
		t.Error("a read flip changed the stored data")
	}
}

func TestFaultSilentBlocks(t *testing.T) {
	g := smallGeometry()
	es := int(g.EraseSize)
	dir, pat := prepared(t, g)
	b := openNode(t, dir, WithFaults(&Faults{SilentBlocks: map[string][]int64{hw.PartJournal: {1, 2}}}))
	j := part(t, b, hw.PartJournal)
	// Erase blocks 0..2: reported done, block 1 keeps its data.
	if err := j.Erase(0, 3*g.EraseSize); err != nil {
		t.Fatalf("Erase over a silent block = %v, want nil (it lies)", err)
	}
	// Program across the end of block 1 into block 2 (erased, silent) and 3.
	p := bytes.Repeat([]byte{0x11}, 2*es)
	if _, err := j.WriteAt(p, int64(2*es)); err != nil {
		t.Fatalf("WriteAt over a silent block = %v, want nil", err)
	}
	got := readAll(t, j)
	want := append(append(append(ff(es), pat[es:2*es]...), ff(es)...), p[:es]...)
	if !bytes.Equal(got[:4*es], want) {
		t.Errorf("content differs from the expected one at byte %d", firstDiff(got, want))
	}
	if b.Ops() != 2 {
		t.Errorf("Ops() = %d, want 2", b.Ops())
	}
}

func TestFaultReadErrBlocks(t *testing.T) {
	g := smallGeometry()
	dir, _ := prepared(t, g)
	b := openNode(t, dir, WithFaults(&Faults{ReadErrBlocks: map[string][]int64{hw.PartJournal: {1}}}))
	j := part(t, b, hw.PartJournal)
	tests := []struct {
		off     int64
		n       int
		wantErr error
	}{
		{0, 4096, nil},
		{4000, 200, ErrIO},
		{4096, 16, ErrIO},
		{8192, 4096, nil},
	}
	for _, tt := range tests {
		_, err := j.ReadAt(make([]byte, tt.n), tt.off)
		if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
			t.Errorf("ReadAt(%d bytes, %d) = %v, want %v", tt.n, tt.off, err, tt.wantErr)
		}
	}
	if b.Ops() != 0 || b.Dead() {
		t.Errorf("read errors: Ops() = %d, Dead() = %v, want 0, false", b.Ops(), b.Dead())
	}
}
