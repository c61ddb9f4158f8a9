package ubootenv

import (
	"bytes"
	"errors"
	"fmt"

	"meterupd/boards/hw"
)

// errPowerCut is what the fake flash returns once power is gone.
var errPowerCut = errors.New("fake flash: power cut")

// cutMode is when, relative to the chosen operation, the power goes.
type cutMode int

const (
	cutBefore cutMode = iota // the operation does not happen
	cutAfter                 // the operation completes, then power goes
	cutTorn                  // the operation stops after tornAt bytes, the next byte half done
)

func (m cutMode) String() string { return [...]string{"before", "after", "torn"}[m] }

// fakeFlash is an in-memory flash partition with the rules of the real
// parts: erase before program, NOR programs only clear bits, NAND programs
// each page once, aligned operations. It can lose power at operation
// cutOp (1-based; WriteAt and Erase count, reads do not).
type fakeFlash struct {
	mem        []byte
	eraseSize  int64
	writeSize  int64
	nand       bool
	ops        int
	cutOp      int // 0: never
	mode       cutMode
	tornAt     int64
	dead       bool
	programmed []bool // NAND: page programmed since erase
}

var _ hw.Flash = (*fakeFlash)(nil)

func newNOR(size, eraseSize int64) *fakeFlash {
	return &fakeFlash{mem: bytes.Repeat([]byte{0xFF}, int(size)), eraseSize: eraseSize, writeSize: 1}
}

func newNAND(size, eraseSize, page int64) *fakeFlash {
	return &fakeFlash{mem: bytes.Repeat([]byte{0xFF}, int(size)), eraseSize: eraseSize, writeSize: page, nand: true,
		programmed: make([]bool, size/page)}
}

// clone returns a powered copy of the flash contents (the reboot).
func (f *fakeFlash) clone() *fakeFlash {
	c := *f
	c.mem = append([]byte(nil), f.mem...)
	c.programmed = append([]bool(nil), f.programmed...)
	c.ops, c.cutOp, c.dead = 0, 0, false
	return &c
}

func (f *fakeFlash) Size() int64      { return int64(len(f.mem)) }
func (f *fakeFlash) EraseSize() int64 { return f.eraseSize }
func (f *fakeFlash) WriteSize() int64 { return f.writeSize }

func (f *fakeFlash) ReadAt(p []byte, off int64) (int, error) {
	if f.dead {
		return 0, errPowerCut
	}
	if off < 0 || off > int64(len(f.mem)) {
		return 0, fmt.Errorf("fake flash: read at %d: %w", off, hw.ErrAlignment)
	}
	n := copy(p, f.mem[off:])
	if n < len(p) {
		return n, fmt.Errorf("fake flash: read past end")
	}
	return n, nil
}

// step counts an operation and reports what to do with it.
func (f *fakeFlash) step() (run bool, torn bool, err error) {
	if f.dead {
		return false, false, errPowerCut
	}
	f.ops++
	if f.cutOp == 0 || f.ops != f.cutOp {
		return true, false, nil
	}
	f.dead = true
	switch f.mode {
	case cutBefore:
		return false, false, errPowerCut
	case cutAfter:
		return true, false, errPowerCut
	}
	return true, true, errPowerCut
}

func (f *fakeFlash) WriteAt(p []byte, off int64) (int, error) {
	n := int64(len(p))
	if off < 0 || off%f.writeSize != 0 || n%f.writeSize != 0 || off+n > int64(len(f.mem)) {
		return 0, fmt.Errorf("fake flash: write %d at %d: %w", n, off, hw.ErrAlignment)
	}
	for i := range p {
		if !f.nand && f.mem[off+int64(i)]&p[i] != p[i] {
			return 0, fmt.Errorf("fake flash: NOR byte %d: %w", off+int64(i), hw.ErrNotErased)
		}
	}
	if f.nand {
		for pg := off / f.writeSize; pg < (off+n)/f.writeSize; pg++ {
			if f.programmed[pg] {
				return 0, fmt.Errorf("fake flash: NAND page %d: %w", pg, hw.ErrNotErased)
			}
		}
	}
	run, torn, err := f.step()
	if !run {
		return 0, err
	}
	end := n
	if torn {
		end = min(f.tornAt, n)
	}
	for i := int64(0); i < end; i++ {
		f.mem[off+i] &= p[i]
	}
	if torn && end < n {
		// The byte being programmed when power went: half of its bits.
		f.mem[off+end] &= p[end] | 0xAA
	}
	if f.nand {
		for pg := off / f.writeSize; pg < (off+n)/f.writeSize; pg++ {
			f.programmed[pg] = true
		}
	}
	if err != nil {
		return int(end), err
	}
	return len(p), nil
}

func (f *fakeFlash) Erase(off, n int64) error {
	if off < 0 || off%f.eraseSize != 0 || n%f.eraseSize != 0 || off+n > int64(len(f.mem)) {
		return fmt.Errorf("fake flash: erase %d at %d: %w", n, off, hw.ErrAlignment)
	}
	run, torn, err := f.step()
	if !run {
		return err
	}
	end := n
	if torn {
		end = min(f.tornAt, n)
	}
	for i := int64(0); i < end; i++ {
		f.mem[off+i] = 0xFF
	}
	if torn && end < n {
		f.mem[off+end] |= 0x55
	}
	if f.nand {
		for pg := off / f.writeSize; pg < (off+end)/f.writeSize; pg++ {
			f.programmed[pg] = false
		}
	}
	return err
}
