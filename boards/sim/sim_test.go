package sim

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meterupd/boards"
	"meterupd/boards/hw"
)

// smallGeometry keeps test nodes tiny: 4 KiB blocks, 16-byte write unit.
func smallGeometry() Geometry {
	return Geometry{EraseSize: 4096, WriteSize: 16, SlotSize: 64 << 10, JournalSize: 16 << 10, CommonSize: 8 << 10, Attempts: 3}
}

func newNode(t testing.TB, g Geometry) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if err := Create(dir, g); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return dir
}

func openNode(t testing.TB, dir string, opts ...Option) *Board {
	t.Helper()
	opts = append([]Option{WithLogger(testLogger(t))}, opts...)
	b, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func part(t testing.TB, b *Board, name string) hw.Flash {
	t.Helper()
	var (
		f   hw.Flash
		err error
	)
	if s := hw.Slot(name); s.Valid() {
		f, err = b.Slot(s)
	} else {
		f, err = b.Partition(name)
	}
	if err != nil {
		t.Fatalf("partition %s: %v", name, err)
	}
	return f
}

func readAll(t testing.TB, f hw.Flash) []byte {
	t.Helper()
	p := make([]byte, f.Size())
	if n, err := f.ReadAt(p, 0); err != nil || int64(n) != f.Size() {
		t.Fatalf("ReadAt(all) = %d, %v", n, err)
	}
	return p
}

func ff(n int) []byte { return bytes.Repeat([]byte{0xFF}, n) }

func TestCreateOpen(t *testing.T) {
	g := smallGeometry()
	dir := newNode(t, g)
	b := openNode(t, dir)
	if got := b.Geometry(); got != g {
		t.Errorf("Geometry() = %+v, want %+v", got, g)
	}
	if got := b.Name(); got != "sim" {
		t.Errorf("Name() = %q, want sim", got)
	}
	for _, name := range []string{"A", "B", "F", hw.PartJournal, hw.PartCommon} {
		f := part(t, b, name)
		if got, want := f.Size(), g.size(name); got != want {
			t.Errorf("%s: Size() = %d, want %d", name, got, want)
		}
		if f.EraseSize() != g.EraseSize || f.WriteSize() != g.WriteSize {
			t.Errorf("%s: EraseSize, WriteSize = %d, %d, want %d, %d", name, f.EraseSize(), f.WriteSize(), g.EraseSize, g.WriteSize)
		}
		if !bytes.Equal(readAll(t, f), ff(int(f.Size()))) {
			t.Errorf("%s: not erased after Create", name)
		}
	}
	got, err := b.Boot().Load()
	want := hw.BootState{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: 3}}
	if err != nil || !cmp.Equal(got, want, eqEmpty) {
		t.Errorf("Load() = %+v, %v, want %+v", got, err, want)
	}
	if _, err := b.Boot().Booted(); !errors.Is(err, ErrNotBooted) {
		t.Errorf("Booted() before PowerOn: err = %v, want ErrNotBooted", err)
	}
	if _, err := b.Partition("nope"); !errors.Is(err, ErrNoPartition) {
		t.Errorf("Partition(nope): err = %v, want ErrNoPartition", err)
	}
	if _, err := b.Slot("C"); !errors.Is(err, ErrNoPartition) {
		t.Errorf("Slot(C): err = %v, want ErrNoPartition", err)
	}
	if err := Create(dir, g); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Create(existing node): err = %v, want ErrNotEmpty", err)
	}
	if err := Create(filepath.Join(t.TempDir(), "x"), Geometry{}); !errors.Is(err, ErrBadGeometry) {
		t.Errorf("Create(zero geometry): err = %v, want ErrBadGeometry", err)
	}
}

func TestOpenErrors(t *testing.T) {
	g := smallGeometry()
	tests := []struct {
		name    string
		damage  func(dir string) error
		wantErr error
	}{
		{"missing dir", func(dir string) error { return os.RemoveAll(dir) }, ErrNoState},
		{"missing board.json", func(dir string) error { return os.Remove(filepath.Join(dir, stateName)) }, ErrNoState},
		{"garbage board.json", func(dir string) error { return os.WriteFile(filepath.Join(dir, stateName), []byte("{"), 0o644) }, ErrCorruptState},
		{"newer format", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, stateName), []byte(`{"format":2,"geometry":{"future":1}}`), 0o644)
		}, ErrNewerState},
		{"bad geometry", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, stateName), []byte(`{"format":1,"geometry":{"erase_size":4096}}`), 0o644)
		}, ErrCorruptState},
		{"short partition", func(dir string) error { return os.Truncate(filepath.Join(dir, "B.bin"), 4096) }, ErrCorruptState},
		{"missing partition", func(dir string) error { return os.Remove(filepath.Join(dir, "journal.bin")) }, ErrCorruptState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newNode(t, g)
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			b, err := Open(dir)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Open() = %v, %v, want error %v", b, err, tt.wantErr)
			}
		})
	}
}

func TestFlashRules(t *testing.T) {
	g := smallGeometry()
	pat := func(v byte, n int) []byte { return bytes.Repeat([]byte{v}, n) }
	type op struct {
		erase   bool
		off, n  int64  // erase
		p       []byte // program
		wantErr error
	}
	tests := []struct {
		name string
		ops  []op
		// want is the first 64 bytes of the partition afterwards.
		want []byte
	}{
		{"program erased", []op{{p: pat(0x5A, 16)}}, append(pat(0x5A, 16), ff(48)...)},
		{"program clears more bits", []op{{p: pat(0xF0, 16)}, {p: pat(0x30, 16)}}, append(pat(0x30, 16), ff(48)...)},
		{"one over zero rejected", []op{{p: pat(0x0F, 16)}, {p: pat(0x1F, 16), wantErr: hw.ErrNotErased}}, append(pat(0x0F, 16), ff(48)...)},
		{"same value again is fine", []op{{p: pat(0x42, 32)}, {p: pat(0x42, 32)}}, append(pat(0x42, 32), ff(32)...)},
		{"erase then program", []op{{p: pat(0, 64)}, {erase: true, off: 0, n: 4096}, {p: pat(0x7E, 16)}}, append(pat(0x7E, 16), ff(48)...)},
		{"misaligned offset", []op{{off: 8, p: pat(0, 16), wantErr: hw.ErrAlignment}}, ff(64)},
		{"misaligned length", []op{{p: pat(0, 8), wantErr: hw.ErrAlignment}}, ff(64)},
		{"negative offset", []op{{off: -16, p: pat(0, 16), wantErr: hw.ErrAlignment}}, ff(64)},
		{"misaligned erase", []op{{p: pat(0, 64)}, {erase: true, off: 16, n: 4096, wantErr: hw.ErrAlignment}}, pat(0, 64)},
		{"short erase", []op{{p: pat(0, 64)}, {erase: true, off: 0, n: 16, wantErr: hw.ErrAlignment}}, pat(0, 64)},
		{"program past end", []op{{off: 16 << 10, p: pat(0, 16), wantErr: ErrOutOfRange}}, ff(64)},
		{"erase past end", []op{{erase: true, off: 12 << 10, n: 8192, wantErr: ErrOutOfRange}}, ff(64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openNode(t, newNode(t, g))
			f := part(t, b, hw.PartJournal)
			for i, o := range tt.ops {
				var err error
				if o.erase {
					err = f.Erase(o.off, o.n)
				} else {
					var n int
					n, err = f.WriteAt(o.p, o.off)
					if err == nil && n != len(o.p) {
						t.Errorf("op %d: WriteAt = %d, want %d", i, n, len(o.p))
					}
				}
				if !errors.Is(err, o.wantErr) || (err != nil && o.wantErr == nil) {
					t.Errorf("op %d: err = %v, want %v", i, err, o.wantErr)
				}
			}
			got := make([]byte, 64)
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("content = % x\nwant      % x", got, tt.want)
			}
		})
	}
}

func TestReadAtEOF(t *testing.T) {
	b := openNode(t, newNode(t, smallGeometry()))
	f := part(t, b, hw.PartCommon)
	size := f.Size()
	tests := []struct {
		off     int64
		n       int
		wantN   int
		wantErr error
	}{
		{0, 16, 16, nil},
		{size - 16, 16, 16, nil},
		{size - 8, 16, 8, io.EOF},
		{size, 16, 0, io.EOF},
		{size + 100, 1, 0, io.EOF},
		{-1, 1, 0, ErrOutOfRange},
	}
	for _, tt := range tests {
		n, err := f.ReadAt(make([]byte, tt.n), tt.off)
		if n != tt.wantN || !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
			t.Errorf("ReadAt(%d bytes, %d) = %d, %v, want %d, %v", tt.n, tt.off, n, err, tt.wantN, tt.wantErr)
		}
	}
}

func TestSlotFReadOnly(t *testing.T) {
	g := smallGeometry()
	dir := newNode(t, g)
	img := Image(32<<10, "factory")
	if err := WriteFactory(dir, img); err != nil {
		t.Fatal(err)
	}
	b := openNode(t, dir)
	f := part(t, b, "F")
	if _, err := f.WriteAt(make([]byte, 16), 0); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("F.WriteAt: err = %v, want ErrReadOnly", err)
	}
	if err := f.Erase(0, g.EraseSize); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("F.Erase: err = %v, want ErrReadOnly", err)
	}
	if got := b.ForbiddenWrites(); got != 2 {
		t.Errorf("ForbiddenWrites() = %d, want 2", got)
	}
	if got := b.Ops(); got != 0 {
		t.Errorf("Ops() = %d, want 0 (rejected calls never reach the flash)", got)
	}
	got := readAll(t, f)
	if !bytes.Equal(got[:len(img)], img) || !bytes.Equal(got[len(img):], ff(len(got)-len(img))) {
		t.Error("F changed, or does not hold the factory image followed by erased flash")
	}
	if a := readAll(t, part(t, b, "A")); !bytes.Equal(a, got) {
		t.Error("A differs from F after WriteFactory")
	}
	if err := WriteFactory(dir, make([]byte, g.SlotSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("WriteFactory(too large): err = %v, want ErrTooLarge", err)
	}
}

func TestOpsCount(t *testing.T) {
	g := smallGeometry()
	b := openNode(t, newNode(t, g))
	j := part(t, b, hw.PartJournal)
	c := part(t, b, hw.PartCommon)
	steps := []struct {
		do   func() error
		want int64
	}{
		{func() error { return j.Erase(0, g.JournalSize) }, 1}, // multi-block erase: one op
		{func() error { _, err := j.WriteAt(make([]byte, 64), 0); return err }, 2},
		{func() error { _, err := c.WriteAt(make([]byte, 16), 16); return err }, 3},
		{func() error { _, err := c.WriteAt(make([]byte, 3), 0); return err }, 3}, // misaligned: not an op
		{func() error { _, err := c.WriteAt(ff(16), 16); return err }, 4},         // reaches the flash, rejected there
		{func() error { _, err := j.ReadAt(make([]byte, 16), 0); return err }, 4}, // reads are not ops
		{func() error { return b.Boot().Store(hw.BootState{Order: []hw.Slot{"B"}}) }, 6},
	}
	for i, s := range steps {
		s.do()
		if got := b.Ops(); got != s.want {
			t.Errorf("step %d: Ops() = %d, want %d", i, got, s.want)
		}
	}
}

func TestPower(t *testing.T) {
	dir := newNode(t, smallGeometry())
	b := openNode(t, dir)
	if got, err := b.Power().Source(); got != hw.Mains || err != nil {
		t.Errorf("Source() = %q, %v, want mains", got, err)
	}
	if err := b.SetPower(hw.Battery); err != nil {
		t.Fatal(err)
	}
	b2 := openNode(t, dir)
	if got, err := b2.Power().Source(); got != hw.Battery || err != nil {
		t.Errorf("Source() after SetPower(battery) and reopen = %q, %v, want battery", got, err)
	}
	if got := b.Ops(); got != 0 {
		t.Errorf("SetPower cost %d flash ops, want 0", got)
	}
	if err := b.SetPower("solar"); err == nil {
		t.Error("SetPower(solar) = nil, want an error")
	}
	if err := os.WriteFile(filepath.Join(dir, powerName), []byte("???"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Power().Source(); !errors.Is(err, ErrCorruptState) {
		t.Errorf("Source() with a garbage power file: err = %v, want ErrCorruptState", err)
	}
}

func TestRegistryOpenPowersOn(t *testing.T) {
	dir := newNode(t, smallGeometry())
	if err := WriteFactory(dir, Image(20<<10, "v1")); err != nil {
		t.Fatal(err)
	}
	hb, err := boards.Open("sim", boards.Config{StateDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("boards.Open(sim): %v", err)
	}
	defer hb.(*Board).Close()
	if s, err := hb.Boot().Booted(); s != hw.SlotA || err != nil {
		t.Errorf("Booted() after boards.Open = %q, %v, want A", s, err)
	}
	// A second open does not boot again: the node is running.
	hb2, err := boards.Open("sim", boards.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer hb2.(*Board).Close()
	st, _ := hb2.Boot().Load()
	if st.Left[hw.SlotA] != 2 {
		t.Errorf("Left[A] = %d after two opens, want 2 (one power-on)", st.Left[hw.SlotA])
	}
	if _, err := boards.Open("sim", boards.Config{}); !errors.Is(err, ErrNoState) {
		t.Errorf("boards.Open(sim, no state dir): err = %v, want ErrNoState", err)
	}
}

func TestClosed(t *testing.T) {
	b, err := Open(newNode(t, smallGeometry()))
	if err != nil {
		t.Fatal(err)
	}
	j := part(t, b, hw.PartJournal)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Erase(0, j.EraseSize()); !errors.Is(err, ErrClosed) {
		t.Errorf("Erase after Close = %v, want ErrClosed", err)
	}
	if _, err := j.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close = %v, want ErrClosed", err)
	}
}
