package slots

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"meterupd/boards/hw"
)

// ProgramChunk is how many bytes one program operation writes when the
// flash's own write unit is smaller: a NOR page-program burst, or a NAND
// page. It bounds how much a torn program can spoil, and it is the unit the
// power-cut suite counts.
const ProgramChunk = 4096

// ErrVerify is returned when a block reads back differently from what was
// programmed (a bad block, a silent program failure, a torn write).
var ErrVerify = errors.New("slots: read-back mismatch")

// ErrTooLarge is returned for an image that does not fit its slot.
var ErrTooLarge = errors.New("slots: image larger than the slot")

// WriteBlock erases erase block i of f and programs p into it (len(p) at
// most one erase block), in program operations of at most ProgramChunk
// bytes, then reads the block back and compares. A tail shorter than the
// write unit is padded with the erased value. Writing a block again is
// safe: it is erased first, so a resume after a cut may redo it.
func WriteBlock(f hw.Flash, i int64, p []byte) error {
	es := f.EraseSize()
	if int64(len(p)) > es {
		return fmt.Errorf("slots: block %d: %d bytes do not fit an erase block of %d", i, len(p), es)
	}
	off := i * es
	if off < 0 || off+es > f.Size() {
		return fmt.Errorf("%w: block %d past the slot's %d bytes", ErrTooLarge, i, f.Size())
	}
	if err := f.Erase(off, es); err != nil {
		return fmt.Errorf("slots: erase block %d: %w", i, err)
	}
	ws := f.WriteSize()
	if ws < 1 {
		ws = 1
	}
	if r := int64(len(p)) % ws; r != 0 {
		p = append(p[:len(p):len(p)], bytes.Repeat([]byte{0xFF}, int(ws-r))...)
	}
	chunk := int64(ProgramChunk)
	if chunk < ws {
		chunk = ws
	}
	chunk -= chunk % ws
	for o := int64(0); o < int64(len(p)); o += chunk {
		end := min(o+chunk, int64(len(p)))
		if allErased(p[o:end]) {
			continue // erased already: programming 0xFF is a no-op
		}
		if _, err := f.WriteAt(p[o:end], off+o); err != nil {
			return fmt.Errorf("slots: program block %d at +%d: %w", i, o, err)
		}
	}
	ok, err := BlockMatches(f, i, p)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w in block %d", ErrVerify, i)
	}
	return nil
}

func allErased(p []byte) bool {
	for _, b := range p {
		if b != 0xFF {
			return false
		}
	}
	return true
}

// BlockMatches reports whether erase block i of f begins with p.
func BlockMatches(f hw.Flash, i int64, p []byte) (bool, error) {
	got := make([]byte, len(p))
	if _, err := f.ReadAt(got, i*f.EraseSize()); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("slots: read back block %d: %w", i, err)
	}
	return bytes.Equal(got, p), nil
}

// Hash returns the SHA-256 of the first size bytes of f.
func Hash(f hw.Flash, size int64) ([32]byte, error) {
	var sum [32]byte
	if size < 0 || size > f.Size() {
		return sum, fmt.Errorf("%w: %d bytes, slot has %d", ErrTooLarge, size, f.Size())
	}
	h := sha256.New()
	// Large reads: one flash read per erase block rather than io.Copy's
	// 32 KiB, which on an MTD device is a syscall each.
	buf := make([]byte, max(f.EraseSize(), 64<<10))
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), buf); err != nil {
		return sum, fmt.Errorf("slots: hash: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
