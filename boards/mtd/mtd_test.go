package mtd_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/mtd"
	"meterupd/boards/mtd/mtdtest"
)

const (
	es   = 16 << 10 // erase block of the small-page NAND
	page = 512
)

func newNAND(t *testing.T, blocks int, bad ...int) *mtdtest.Chip {
	t.Helper()
	return mtdtest.NewNAND(int64(blocks)*es, es, page, 16, bad...)
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestOpenFindsPartitionByName(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	parts := []mtd.Partition{{0, 4 * es, es, "u-boot"}, {3, 8 * es, es, "journal"}}
	if err := os.WriteFile(filepath.Join(root, "proc", "mtd"), []byte(mtd.Format(parts)), 0o644); err != nil {
		t.Fatal(err)
	}
	chip := newNAND(t, 8)
	var opened string
	opener := mtd.WithOpener(func(path string, ro bool) (mtd.Device, error) {
		opened = path
		return chip, nil
	})
	f, err := mtd.Open(root, "journal", opener, mtd.WithSize(6*es))
	if err != nil {
		t.Fatalf("Open(journal) = %v", err)
	}
	if want := filepath.Join(root, "dev", "mtd3"); opened != want {
		t.Errorf("Open(journal) opened %q, want %q", opened, want)
	}
	if got, want := f.Size(), int64(6*es); got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
	if _, err := mtd.Open(root, "rootfs_a", opener); !errors.Is(err, mtd.ErrNotFound) {
		t.Errorf("Open(rootfs_a) = %v, want ErrNotFound", err)
	}
}

func TestBadBlocksAreSkipped(t *testing.T) {
	chip := newNAND(t, 8, 1, 3)
	f, err := mtd.New(chip, "slot", mtd.WithSize(5*es))
	if err != nil {
		t.Fatal(err)
	}
	for logical, want := range []int64{0, 2, 4, 5, 6} {
		got, err := f.Physical(int64(logical) * es)
		if err != nil || got != want*es {
			t.Errorf("Physical(block %d) = %#x, %v, want %#x", logical, got, err, want*es)
		}
	}
	img := make([]byte, 5*es)
	for i := range img {
		img[i] = byte(i * 7)
	}
	if err := f.Erase(0, f.Size()); err != nil {
		t.Fatal(err)
	}
	if n, err := f.WriteAt(img, 0); err != nil || n != len(img) {
		t.Fatalf("WriteAt(whole slot) = %d, %v", n, err)
	}
	got := make([]byte, len(img))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("ReadAt after write: err %v, equal %v", err, bytes.Equal(got, img))
	}
	raw := chip.Bytes()
	for _, b := range []int{1, 3} {
		if chip.Programs[b] != 0 || chip.Erases[b] != 0 {
			t.Errorf("bad block %d: %d programs, %d erases, want none", b, chip.Programs[b], chip.Erases[b])
		}
		if !bytes.Equal(raw[b*es:(b+1)*es], fill(es, 0xFF)) {
			t.Errorf("bad block %d was written", b)
		}
	}
}

func TestTooFewGoodBlocksFailsBeforeWriting(t *testing.T) {
	chip := newNAND(t, 6, 0, 4)
	_, err := mtd.New(chip, "rootfs_a", mtd.WithSize(5*es))
	if !errors.Is(err, mtd.ErrTooFewGoodBlocks) {
		t.Fatalf("New(5 blocks on 4 good) = %v, want ErrTooFewGoodBlocks", err)
	}
	for b := range 6 {
		if chip.Programs[b]+chip.Erases[b] != 0 {
			t.Errorf("block %d touched", b)
		}
	}
}

func TestRefusedWritesChangeNothing(t *testing.T) {
	chip := newNAND(t, 4)
	f, err := mtd.New(chip, "journal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(fill(page, 0), es+page); err != nil {
		t.Fatal(err)
	}
	before := chip.Bytes()
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"write misaligned offset", func() error { _, err := f.WriteAt(fill(page, 1), 3); return err }, hw.ErrAlignment},
		{"write misaligned length", func() error { _, err := f.WriteAt(fill(page+1, 1), 0); return err }, hw.ErrAlignment},
		{"write over a programmed page in the second block", func() error { _, err := f.WriteAt(fill(es+2*page, 1), 0); return err }, hw.ErrNotErased},
		{"write past the end", func() error { _, err := f.WriteAt(fill(page, 1), 4*es); return err }, mtd.ErrRange},
		{"write negative", func() error { _, err := f.WriteAt(fill(page, 1), -page); return err }, mtd.ErrRange},
		{"erase misaligned", func() error { return f.Erase(page, es) }, hw.ErrAlignment},
		{"erase past the end", func() error { return f.Erase(3*es, 2*es) }, mtd.ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if !bytes.Equal(chip.Bytes(), before) {
				t.Errorf("flash changed")
			}
		})
	}
}

func TestNORProgramsOnlyClearBits(t *testing.T) {
	chip := mtdtest.NewNOR(4*es, es)
	f, err := mtd.New(chip, "env")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xF0}, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x30}, 5); err != nil {
		t.Errorf("clearing more bits = %v, want nil", err)
	}
	if _, err := f.WriteAt([]byte{0x31}, 5); !errors.Is(err, hw.ErrNotErased) {
		t.Errorf("setting a bit = %v, want ErrNotErased", err)
	}
	if got := chip.Bytes()[5]; got != 0x30 {
		t.Errorf("byte 5 = %#x, want 0x30", got)
	}
}

func TestReadOnly(t *testing.T) {
	f, err := mtd.New(newNAND(t, 4), "failsafe", mtd.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(fill(page, 0), 0); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("WriteAt = %v, want ErrReadOnly", err)
	}
	if err := f.Erase(0, es); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("Erase = %v, want ErrReadOnly", err)
	}
}

func TestReadAtFollowsReaderAt(t *testing.T) {
	f, err := mtd.New(newNAND(t, 4, 1), "x", mtd.WithSize(2*es))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if n, err := f.ReadAt(p, 2*es-50); n != 50 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v, want 50, EOF", n, err)
	}
	if n, err := f.ReadAt(p, 2*es); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v, want 0, EOF", n, err)
	}
	if _, err := f.ReadAt(p, -1); !errors.Is(err, mtd.ErrRange) {
		t.Errorf("ReadAt(-1) = %v, want ErrRange", err)
	}
}

func TestWornBlockIsMarkedBadAndSkipped(t *testing.T) {
	for _, erase := range []bool{true, false} {
		name := map[bool]string{true: "erase", false: "program"}[erase]
		t.Run(name, func(t *testing.T) {
			chip := newNAND(t, 6)
			f, err := mtd.New(chip, "rootfs_b", mtd.WithSize(4*es))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Erase(0, 4*es); err != nil {
				t.Fatal(err)
			}
			chip.WearOut(1, erase)
			if erase {
				err = f.Erase(es, es)
			} else {
				_, err = f.WriteAt(fill(page, 0x5A), es)
			}
			if !errors.Is(err, hw.ErrBadBlock) {
				t.Fatalf("%s on worn block = %v, want ErrBadBlock", name, err)
			}
			if bad, _ := chip.IsBad(es); !bad {
				t.Errorf("worn block not marked bad")
			}
			if got, _ := f.Physical(es); got != 2*es {
				t.Errorf("logical block 1 now at %#x, want %#x", got, 2*es)
			}
			// The writer resumes from the failed block, in order.
			for off := int64(es); off < 4*es; off += es {
				if err := f.Erase(off, es); err != nil {
					t.Fatalf("re-erase at %#x: %v", off, err)
				}
				if _, err := f.WriteAt(fill(es, byte(off/es)), off); err != nil {
					t.Fatalf("rewrite at %#x: %v", off, err)
				}
			}
			got := make([]byte, es)
			if _, err := f.ReadAt(got, 3*es); err != nil || !bytes.Equal(got, fill(es, 3)) {
				t.Errorf("logical block 3 after rewrite: %v", err)
			}
		})
	}
}

func TestRunningOutOfGoodBlocksIsSticky(t *testing.T) {
	chip := newNAND(t, 4)
	f, err := mtd.New(chip, "journal", mtd.WithSize(4*es))
	if err != nil {
		t.Fatal(err)
	}
	chip.WearOut(2, true)
	if err := f.Erase(0, 4*es); !errors.Is(err, hw.ErrBadBlock) {
		t.Fatalf("Erase = %v, want ErrBadBlock", err)
	}
	if err := f.Erase(0, es); !errors.Is(err, mtd.ErrTooFewGoodBlocks) {
		t.Errorf("Erase after the spare ran out = %v, want ErrTooFewGoodBlocks", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, mtd.ErrTooFewGoodBlocks) {
		t.Errorf("ReadAt after the spare ran out = %v, want ErrTooFewGoodBlocks", err)
	}
}

func TestBadGeometry(t *testing.T) {
	chip := mtdtest.NewNAND(4*es, es, page, 16)
	if _, err := mtd.New(chip, "x", mtd.WithSize(es+page)); !errors.Is(err, hw.ErrAlignment) {
		t.Errorf("New(unaligned size) = %v, want ErrAlignment", err)
	}
}

func TestParsePartitions(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "proc-mtd-am335x.txt"))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := mtd.ParsePartitions(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := mtd.Find(parts, "journal")
	if want := (mtd.Partition{5, 0x400000, 0x20000, "journal"}); !ok || p != want {
		t.Errorf("Find(journal) = %+v, %v, want %+v", p, ok, want)
	}
	bad := []string{
		"dev:    size   erasesize  name\nmtdX: 00020000 00020000 \"a\"\n",
		"dev:    size   erasesize  name\nmtd0: 0002zz00 00020000 \"a\"\n",
		"dev:    size   erasesize  name\nmtd0: 00020000 00020000 a\n",
		"dev:    size   erasesize  name\nmtd0: 00020000\n",
		strings.Repeat("x", 70<<10),
	}
	for _, in := range bad {
		if _, err := mtd.ParsePartitions(strings.NewReader(in)); !errors.Is(err, mtd.ErrProcMTD) {
			t.Errorf("ParsePartitions(%.40q) = %v, want ErrProcMTD", in, err)
		}
	}
}

func FuzzParsePartitions(f *testing.F) {
	for _, name := range []string{"proc-mtd-am335x.txt", "proc-mtd-nandsim.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parts, err := mtd.ParsePartitions(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, mtd.ErrProcMTD) {
				t.Fatalf("error %v does not wrap ErrProcMTD", err)
			}
			return
		}
		// Round trip: names without quotes or newlines format back.
		for _, p := range parts {
			if strings.ContainsAny(p.Name, "\"\\\n") || !isPrintable(p.Name) {
				return
			}
		}
		again, err := mtd.ParsePartitions(strings.NewReader(mtd.Format(parts)))
		if err != nil {
			t.Fatalf("reparse of Format: %v", err)
		}
		if len(again) != len(parts) {
			t.Fatalf("round trip: %d partitions, want %d", len(again), len(parts))
		}
		for i := range parts {
			if again[i] != parts[i] {
				t.Fatalf("round trip: %+v, want %+v", again[i], parts[i])
			}
		}
	})
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r >= 0x7f {
			return false
		}
	}
	return true
}

func TestUncorrectableReadIsAnError(t *testing.T) {
	chip := newNAND(t, 4, 1)
	f, err := mtd.New(chip, "rootfs_a", mtd.WithSize(2*es))
	if err != nil {
		t.Fatal(err)
	}
	// Logical block 1 is physical block 2.
	chip.Rot(2*es+3*page, false)
	p := make([]byte, 2*es)
	if _, err := f.ReadAt(p, 0); err != nil {
		t.Fatalf("ReadAt with a corrected bitflip = %v, want nil", err)
	}
	if got := f.Corrected(); got != 1 {
		t.Errorf("Corrected() = %d, want 1", got)
	}
	chip.Rot(2*es+5*page, true)
	if _, err := f.ReadAt(p[:page], es+5*page); !errors.Is(err, mtd.ErrUncorrectable) {
		t.Errorf("ReadAt of an uncorrectable page = %v, want ErrUncorrectable", err)
	}
	if _, err := f.ReadAt(p[:es], 0); err != nil {
		t.Errorf("ReadAt of block 0 = %v, want nil", err)
	}
	if err := f.Erase(es, es); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(p[:es], es); err != nil {
		t.Errorf("ReadAt after erase = %v, want nil", err)
	}
}

// truncated is a device whose MEMGETINFO size wrapped at 4 GiB, as the
// kernel's 32-bit mtd_info_user.size does for big NAND.
type truncated struct{ *mtdtest.Chip }

func (d truncated) Info() (mtd.Info, error) {
	info, err := d.Chip.Info()
	info.Size = 4 * es // what is left of 4 GiB + 4 blocks after truncation
	return info, err
}

func (d truncated) IsBad(off int64) (bool, error) { return false, nil }

func TestOpenTrustsProcMTDForBigPartitions(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := int64(4<<30 + 4*es)
	parts := []mtd.Partition{{Index: 0, Size: big, EraseSize: es, Name: "rootfs_a"}}
	if err := os.WriteFile(filepath.Join(root, "proc", "mtd"), []byte(mtd.Format(parts)), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := truncated{newNAND(t, 4)}
	f, err := mtd.Open(root, "rootfs_a", mtd.WithSize(2*es), mtd.WithOpener(func(string, bool) (mtd.Device, error) { return dev, nil }))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Info().Size; got != big {
		t.Errorf("Info().Size = %#x, want %#x from /proc/mtd", got, big)
	}
}
