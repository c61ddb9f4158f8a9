package delta

import (
	"errors"
	"fmt"
	"io"
)

// view is random access to one version of the image: the source slot, or a
// version that a chain hop produces on demand.
type view interface {
	io.ReaderAt
	Size() int64
}

// readerView adapts the caller's source (the active slot) to a view.
type readerView struct {
	r    io.ReaderAt
	size int64
}

func (v *readerView) Size() int64 { return v.size }

func (v *readerView) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > v.size || int64(len(p)) > v.size-off {
		return 0, fmt.Errorf("delta: source read [%d,+%d) outside the %d-byte source", off, len(p), v.size)
	}
	n, err := v.r.ReadAt(p, off)
	if n == len(p) {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, fmt.Errorf("delta: read source: %w", err)
}

// readOld fills p with the bytes of v at off; bytes outside [0, size) read as
// zero, as bspatch treats them.
func readOld(v view, p []byte, off int64) error {
	size := v.Size()
	lo, hi := off, off+int64(len(p))
	if lo >= size || hi <= 0 {
		clear(p)
		return nil
	}
	if lo < 0 {
		clear(p[:-lo])
		p, lo = p[-lo:], 0
	}
	if hi > size {
		clear(p[size-lo:])
		p = p[:size-lo]
	}
	_, err := v.ReadAt(p, lo)
	return err
}

// armView serves another view through the ARM branch transform.
type armView struct {
	v       view
	encode  bool
	scratch []byte
}

func (a *armView) Size() int64 { return a.v.Size() }

func (a *armView) ReadAt(p []byte, off int64) (int, error) {
	size := a.v.Size()
	if off < 0 || off > size || int64(len(p)) > size-off {
		return 0, fmt.Errorf("delta: read [%d,+%d) outside the %d-byte image", off, len(p), size)
	}
	lo := off &^ 3
	hi := min((off+int64(len(p))+3)&^3, size)
	n := int(hi - lo)
	if cap(a.scratch) < n {
		a.scratch = make([]byte, n)
	}
	buf := a.scratch[:n]
	if _, err := a.v.ReadAt(buf, lo); err != nil {
		return 0, err
	}
	armConvert(buf, lo, a.encode)
	return copy(p, buf[off-lo:]), nil
}
