package mtd_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/mtd"
	"meterupd/boards/mtd/mtdtest"
)

func TestConcatSpansTheBoundary(t *testing.T) {
	k, err := mtd.New(newNAND(t, 3), "kernel_a", mtd.WithSize(2*es))
	if err != nil {
		t.Fatal(err)
	}
	rchip := newNAND(t, 5, 0)
	r, err := mtd.New(rchip, "rootfs_a", mtd.WithSize(4*es))
	if err != nil {
		t.Fatal(err)
	}
	c, err := mtd.NewConcat(k, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Size(), int64(6*es); got != want {
		t.Fatalf("Size() = %d, want %d", got, want)
	}
	if err := c.Erase(es, 2*es); err != nil {
		t.Fatalf("Erase across the boundary = %v", err)
	}
	data := bytes.Repeat([]byte{0x42}, 2*page)
	if _, err := c.WriteAt(data, 2*es-page); err != nil {
		t.Fatalf("WriteAt across the boundary = %v", err)
	}
	got := make([]byte, len(data))
	if _, err := c.ReadAt(got, 2*es-page); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAt across the boundary: %v", err)
	}
	// The rootfs part starts at its first good block (block 0 is bad).
	if raw := rchip.Bytes(); !bytes.Equal(raw[es:es+page], data[page:]) {
		t.Errorf("second half not at rootfs physical block 1")
	}
	if _, err := c.WriteAt(data[:1], 0); !errors.Is(err, hw.ErrAlignment) {
		t.Errorf("misaligned WriteAt = %v, want ErrAlignment", err)
	}
	if err := c.Erase(5*es, 2*es); !errors.Is(err, mtd.ErrRange) {
		t.Errorf("Erase past the end = %v, want ErrRange", err)
	}
	if n, err := c.ReadAt(make([]byte, 10), 6*es-4); n != 4 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v, want 4, EOF", n, err)
	}
}

func TestConcatRefusesMixedGeometry(t *testing.T) {
	a, _ := mtd.New(newNAND(t, 2), "a")
	b, _ := mtd.New(mtdtest.NewNOR(2*es, es), "b")
	if _, err := mtd.NewConcat(a, b); !errors.Is(err, mtd.ErrConcat) {
		t.Errorf("NewConcat(NAND, NOR) = %v, want ErrConcat", err)
	}
}
