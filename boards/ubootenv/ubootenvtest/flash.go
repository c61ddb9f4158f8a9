package ubootenvtest

import (
	"bytes"
	"errors"
	"fmt"

	"meterupd/boards/flashfake"
	"meterupd/boards/hw"
)

// ErrPowerCut is what the fake flash returns once power is gone.
var ErrPowerCut = errors.New("fake flash: power cut")

// CutMode is when, relative to the chosen operation, the power goes.
type CutMode int

const (
	CutBefore CutMode = iota // the operation does not happen
	CutAfter                 // the operation completes, then power goes
	CutTorn                  // the operation stops after TornAt bytes, the next byte half done
)

func (m CutMode) String() string { return [...]string{"before", "after", "torn"}[m] }

// Flash is an in-memory flash partition with the rules of the real
// parts: erase before program, NOR programs only clear bits, NAND programs
// each page once, aligned operations — the rules of boards/flashfake, which
// it applies (flashfake.NotErased, flashfake.Pages). It keeps its own
// field-based API because the boot environment's power-cut tests enumerate
// every tear position (TornAt) instead of drawing one at random. It loses
// power at operation CutOp (1-based; WriteAt and Erase count, reads do not).
type Flash struct {
	// Mem is the flash contents.
	Mem []byte
	// Ops counts WriteAt and Erase calls since the last power-on.
	Ops int
	// OpSizes holds the length in bytes of each of those operations.
	OpSizes []int64
	// CutOp is the operation (1-based) at which power goes; 0 never.
	CutOp int
	// Mode says where in operation CutOp power goes.
	Mode CutMode
	// TornAt is how many bytes a CutTorn operation completes.
	TornAt int64

	eraseSize int64
	writeSize int64
	nand      bool
	dead      bool
	pages     flashfake.Pages // NAND: pages programmed since erase
}

var _ hw.Flash = (*Flash)(nil)

// NewNOR returns an erased NOR flash (write unit 1 byte).
func NewNOR(size, eraseSize int64) *Flash {
	return &Flash{Mem: bytes.Repeat([]byte{0xFF}, int(size)), eraseSize: eraseSize, writeSize: 1}
}

// NewNAND returns an erased NAND flash with pages of page bytes.
func NewNAND(size, eraseSize, page int64) *Flash {
	return &Flash{Mem: bytes.Repeat([]byte{0xFF}, int(size)), eraseSize: eraseSize, writeSize: page, nand: true}
}

// Clone returns a powered copy of the flash contents (the reboot).
func (f *Flash) Clone() *Flash {
	c := *f
	c.Mem = append([]byte(nil), f.Mem...)
	c.pages = f.pages.Clone()
	c.Ops, c.CutOp, c.dead, c.OpSizes = 0, 0, false, nil
	return &c
}

func (f *Flash) Size() int64      { return int64(len(f.Mem)) }
func (f *Flash) EraseSize() int64 { return f.eraseSize }
func (f *Flash) WriteSize() int64 { return f.writeSize }

func (f *Flash) ReadAt(p []byte, off int64) (int, error) {
	if f.dead {
		return 0, ErrPowerCut
	}
	if off < 0 || off > int64(len(f.Mem)) {
		return 0, fmt.Errorf("fake flash: read at %d: %w", off, hw.ErrAlignment)
	}
	n := copy(p, f.Mem[off:])
	if n < len(p) {
		return n, fmt.Errorf("fake flash: read past end")
	}
	return n, nil
}

// step counts an operation and reports what to do with it.
func (f *Flash) step(n int64) (run bool, torn bool, err error) {
	if f.dead {
		return false, false, ErrPowerCut
	}
	f.Ops++
	f.OpSizes = append(f.OpSizes, n)
	if f.CutOp == 0 || f.Ops != f.CutOp {
		return true, false, nil
	}
	f.dead = true
	switch f.Mode {
	case CutBefore:
		return false, false, ErrPowerCut
	case CutAfter:
		return true, false, ErrPowerCut
	}
	return true, true, ErrPowerCut
}

func (f *Flash) WriteAt(p []byte, off int64) (int, error) {
	n := int64(len(p))
	if off < 0 || off%f.writeSize != 0 || n%f.writeSize != 0 || off+n > int64(len(f.Mem)) {
		return 0, fmt.Errorf("fake flash: write %d at %d: %w", n, off, hw.ErrAlignment)
	}
	if i := flashfake.NotErased(f.Mem[off:off+n], p); !f.nand && i >= 0 {
		return 0, fmt.Errorf("fake flash: NOR byte %d: %w", off+int64(i), hw.ErrNotErased)
	}
	if f.nand {
		if pg := f.pages.Check(off, n, f.writeSize); pg >= 0 {
			return 0, fmt.Errorf("fake flash: NAND page %d: %w", pg, hw.ErrNotErased)
		}
	}
	run, torn, err := f.step(n)
	if !run {
		return 0, err
	}
	end := n
	if torn {
		end = min(f.TornAt, n)
	}
	for i := int64(0); i < end; i++ {
		f.Mem[off+i] &= p[i]
	}
	if torn && end < n {
		// The byte being programmed when power went: half of its bits.
		f.Mem[off+end] &= p[end] | 0xAA
	}
	if f.nand {
		f.pages.Mark(off, n, f.writeSize, int64(len(f.Mem)))
	}
	if err != nil {
		return int(end), err
	}
	return len(p), nil
}

func (f *Flash) Erase(off, n int64) error {
	if off < 0 || off%f.eraseSize != 0 || n%f.eraseSize != 0 || off+n > int64(len(f.Mem)) {
		return fmt.Errorf("fake flash: erase %d at %d: %w", n, off, hw.ErrAlignment)
	}
	run, torn, err := f.step(n)
	if !run {
		return err
	}
	end := n
	if torn {
		end = min(f.TornAt, n)
	}
	for i := int64(0); i < end; i++ {
		f.Mem[off+i] = 0xFF
	}
	if torn && end < n {
		f.Mem[off+end] |= 0x55
	}
	if f.nand {
		f.pages.Clear(off, end, f.writeSize)
	}
	return err
}
