package flashrec

import (
	"fmt"
	"io"

	"meterupd/boards/hw"
)

// Mem is an in-memory flash for tests and fuzzing, under the hw.Flash
// rules: aligned operations, erase to 0xFF, programs only clear bits (a 1
// over a 0 is hw.ErrNotErased and changes nothing).
type Mem struct {
	B                    []byte
	EraseUnit, WriteUnit int64
}

// NewMem returns an erased Mem of size bytes.
func NewMem(size, eraseSize, writeSize int64) *Mem {
	m := &Mem{B: make([]byte, size), EraseUnit: eraseSize, WriteUnit: writeSize}
	for i := range m.B {
		m.B[i] = 0xFF
	}
	return m
}

var _ hw.Flash = (*Mem)(nil)

func (m *Mem) Size() int64      { return int64(len(m.B)) }
func (m *Mem) EraseSize() int64 { return m.EraseUnit }
func (m *Mem) WriteSize() int64 { return m.WriteUnit }

func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m.B)) {
		return 0, io.EOF
	}
	n := copy(p, m.B[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	n := int64(len(p))
	if off < 0 || off%m.WriteUnit != 0 || n%m.WriteUnit != 0 || off > int64(len(m.B))-n {
		return 0, fmt.Errorf("mem: program %d+%d: %w", off, n, hw.ErrAlignment)
	}
	for i, c := range p {
		if c&^m.B[off+int64(i)] != 0 {
			return 0, fmt.Errorf("mem: program at %d: %w", off+int64(i), hw.ErrNotErased)
		}
	}
	copy(m.B[off:], p)
	return len(p), nil
}

func (m *Mem) Erase(off, n int64) error {
	if off < 0 || off%m.EraseUnit != 0 || n%m.EraseUnit != 0 || off > int64(len(m.B))-n {
		return fmt.Errorf("mem: erase %d+%d: %w", off, n, hw.ErrAlignment)
	}
	for i := off; i < off+n; i++ {
		m.B[i] = 0xFF
	}
	return nil
}
