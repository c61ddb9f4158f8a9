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

// xformView serves another view through an executable transform, or
// with its references projected (x == xformRef, refs set).
type xformView struct {
	v       view
	x       xform
	encode  bool
	refs    *refTable
	scratch []byte
}

func (a *xformView) Size() int64 { return a.v.Size() }

func (a *xformView) ReadAt(p []byte, off int64) (int, error) {
	size := a.v.Size()
	if off < 0 || off > size || int64(len(p)) > size-off {
		return 0, fmt.Errorf("delta: read [%d,+%d) outside the %d-byte image", off, len(p), size)
	}
	lo, hi := xformSpan(off, off+int64(len(p)), 0, size)
	n := int(hi - lo)
	if cap(a.scratch) < n {
		a.scratch = make([]byte, n)
	}
	buf := a.scratch[:n]
	if _, err := a.v.ReadAt(buf, lo); err != nil {
		return 0, err
	}
	if a.refs != nil {
		a.refs.project(buf, lo)
	} else {
		a.x.convert(buf, lo, a.encode)
	}
	return copy(p, buf[off-lo:]), nil
}

// xformSpan widens [lo, hi) to the bytes a transform of it needs: whole
// words and one more on each side, within [start, end) (start a multiple
// of 4).
func xformSpan(lo, hi, start, end int64) (int64, int64) {
	return max(lo&^3-4, start), min((hi+3)&^3+4, end)
}
