package sim

import (
	"crypto/sha256"
	"path/filepath"
	"strconv"
	"testing"

	"meterupd/boards/hw"
)

const benchImage = 4 << 20

func benchNode(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "node")
	if err := Create(dir, DefaultGeometry()); err != nil {
		b.Fatal(err)
	}
	if err := WriteFactory(dir, Image(benchImage, "v1")); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkUpdate4MiB is the sim's share of an update cycle: open the
// board, erase the idle slot (one op), program a 4 MiB image in 4 KiB ops,
// read it back whole and hash it (SHA-256), close.
func BenchmarkUpdate4MiB(b *testing.B) {
	dir := benchNode(b)
	img := Image(benchImage, "v2")
	b.SetBytes(benchImage)
	buf := make([]byte, 64<<10)
	for b.Loop() {
		bd, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := bd.Slot(hw.SlotB)
		if err := f.Erase(0, benchImage); err != nil {
			b.Fatal(err)
		}
		for off := 0; off < benchImage; off += 4096 {
			if _, err := f.WriteAt(img[off:off+4096], int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		h := sha256.New()
		for off := int64(0); off < benchImage; off += int64(len(buf)) {
			if _, err := f.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
			h.Write(buf)
		}
		h.Sum(nil)
		if err := bd.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProgram4MiB is the program part alone: 1024 WriteAt calls of
// 4 KiB (read-check-write each), after one 4 MiB erase.
func BenchmarkProgram4MiB(b *testing.B) {
	dir := benchNode(b)
	img := Image(benchImage, "v2")
	bd, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer bd.Close()
	f, _ := bd.Slot(hw.SlotB)
	b.SetBytes(benchImage)
	for b.Loop() {
		if err := f.Erase(0, benchImage); err != nil {
			b.Fatal(err)
		}
		for off := 0; off < benchImage; off += 4096 {
			if _, err := f.WriteAt(img[off:off+4096], int64(off)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	dir := benchNode(b)
	for b.Loop() {
		bd, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		bd.Close()
	}
}

// BenchmarkPowerOn: store a trial state (2 ops) and power on into a 4 MiB
// image, whose CRC the bootloader checks.
func BenchmarkPowerOn(b *testing.B) {
	dir := benchNode(b)
	bd, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer bd.Close()
	trial := hw.BootState{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: 3}}
	for b.Loop() {
		if err := bd.Boot().Store(trial); err != nil {
			b.Fatal(err)
		}
		if s, err := bd.PowerOn(); err != nil || s != hw.SlotA {
			b.Fatalf("PowerOn = %q, %v", s, err)
		}
	}
}

// BenchmarkCreate makes a node of the default geometry (18 MiB of files).
func BenchmarkCreate(b *testing.B) {
	root := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		if err := Create(filepath.Join(root, strconv.Itoa(i)), DefaultGeometry()); err != nil {
			b.Fatal(err)
		}
	}
}
