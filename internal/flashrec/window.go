package flashrec

import (
	"fmt"
	"io"

	"meterupd/boards/hw"
)

// Window is the erase-block-aligned range [Off, Off+N) of a partition seen
// as a partition of its own: offsets are relative to Off, and nothing
// outside the range can be read, programmed or erased through it.
type Window struct {
	F      hw.Flash
	Off, N int64
}

// NewWindow returns the window [off, off+n) of f; both must be multiples
// of the erase size and lie within f.
func NewWindow(f hw.Flash, off, n int64) (*Window, error) {
	es := f.EraseSize()
	if es <= 0 || off < 0 || n <= 0 || off%es != 0 || n%es != 0 || off > f.Size()-n {
		return nil, fmt.Errorf("%w: window %d+%d of a %d-byte partition (erase size %d)", ErrGeometry, off, n, f.Size(), es)
	}
	return &Window{F: f, Off: off, N: n}, nil
}

var _ hw.Flash = (*Window)(nil)

func (w *Window) Size() int64      { return w.N }
func (w *Window) EraseSize() int64 { return w.F.EraseSize() }
func (w *Window) WriteSize() int64 { return w.F.WriteSize() }

func (w *Window) in(off, n int64) error {
	if off < 0 || n < 0 || off > w.N-n {
		return fmt.Errorf("flashrec: window access %d+%d beyond %d bytes: %w", off, n, w.N, hw.ErrAlignment)
	}
	return nil
}

// ReadAt follows io.ReaderAt within the window.
func (w *Window) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, w.in(off, 0)
	}
	if off >= w.N {
		return 0, io.EOF
	}
	n := min(int64(len(p)), w.N-off)
	got, err := w.F.ReadAt(p[:n], w.Off+off)
	if err == nil && n < int64(len(p)) {
		err = io.EOF
	}
	return got, err
}

// WriteAt programs p at off within the window.
func (w *Window) WriteAt(p []byte, off int64) (int, error) {
	if err := w.in(off, int64(len(p))); err != nil {
		return 0, err
	}
	return w.F.WriteAt(p, w.Off+off)
}

// Erase erases n bytes at off within the window.
func (w *Window) Erase(off, n int64) error {
	if err := w.in(off, n); err != nil {
		return err
	}
	return w.F.Erase(w.Off+off, n)
}
