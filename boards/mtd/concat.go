package mtd

import (
	"errors"
	"fmt"
	"io"
	"math"

	"meterupd/boards/hw"
)

// ErrConcat: the parts of a concatenation do not fit together.
var ErrConcat = errors.New("mtd: cannot concatenate flashes")

// Concat is several flashes as one, end to end, like the kernel's
// mtdconcat: a system set that spans a kernel and a root file system
// partition is one hw.Flash. All parts have the same erase and write sizes.
// An operation that spans two parts is split at the boundary; a refused
// operation (alignment, range) changes nothing.
type Concat struct {
	parts []hw.Flash
	start []int64 // offset of each part
	size  int64
}

var _ hw.Flash = (*Concat)(nil)

// NewConcat concatenates parts.
func NewConcat(parts ...hw.Flash) (*Concat, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no parts", ErrConcat)
	}
	c := &Concat{parts: parts}
	for i, p := range parts {
		if p.EraseSize() != parts[0].EraseSize() || p.WriteSize() != parts[0].WriteSize() {
			return nil, fmt.Errorf("%w: part %d has erase %d write %d, part 0 erase %d write %d",
				ErrConcat, i, p.EraseSize(), p.WriteSize(), parts[0].EraseSize(), parts[0].WriteSize())
		}
		if p.Size()%p.EraseSize() != 0 {
			return nil, fmt.Errorf("%w: part %d size %d is not whole erase blocks", ErrConcat, i, p.Size())
		}
		c.start = append(c.start, c.size)
		c.size += p.Size()
	}
	return c, nil
}

// Parts returns the parts, in order.
func (c *Concat) Parts() []hw.Flash { return c.parts }

func (c *Concat) Size() int64      { return c.size }
func (c *Concat) EraseSize() int64 { return c.parts[0].EraseSize() }
func (c *Concat) WriteSize() int64 { return c.parts[0].WriteSize() }

// span calls fn for each part piece of [off, off+n).
func (c *Concat) span(off, n int64, fn func(p hw.Flash, poff, pos, l int64) error) error {
	for i, p := range c.parts {
		lo, hi := c.start[i], c.start[i]+p.Size()
		if off+n <= lo || off >= hi {
			continue
		}
		s, e := max(off, lo), min(off+n, hi)
		if err := fn(p, s-lo, s-off, e-s); err != nil {
			return err
		}
	}
	return nil
}

func (c *Concat) check(off, n, unit int64) error {
	if off%unit != 0 || n%unit != 0 {
		return fmt.Errorf("%w: offset %#x length %#x, unit %#x", hw.ErrAlignment, off, n, unit)
	}
	if off < 0 || n < 0 || off > math.MaxInt64-n || off+n > c.size {
		return fmt.Errorf("%w: offset %#x length %#x, size %#x", ErrRange, off, n, c.size)
	}
	return nil
}

// ReadAt follows io.ReaderAt.
func (c *Concat) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrRange, off)
	}
	if off >= c.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > c.size-off {
		p = p[:c.size-off]
	}
	n := 0
	err := c.span(off, int64(len(p)), func(f hw.Flash, poff, pos, l int64) error {
		m, err := f.ReadAt(p[pos:pos+l], poff)
		n += m
		if err != nil && !(errors.Is(err, io.EOF) && int64(m) == l) {
			return err
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt programs p at off. The parts check their own flash rules; a write
// across a boundary that the second part refuses leaves the first part
// programmed, so callers write a slot in order, as the agent does.
func (c *Concat) WriteAt(p []byte, off int64) (int, error) {
	if err := c.check(off, int64(len(p)), c.WriteSize()); err != nil {
		return 0, err
	}
	n := 0
	err := c.span(off, int64(len(p)), func(f hw.Flash, poff, pos, l int64) error {
		m, err := f.WriteAt(p[pos:pos+l], poff)
		n += m
		return err
	})
	return n, err
}

// Erase erases n bytes at off, whole erase blocks.
func (c *Concat) Erase(off, n int64) error {
	if err := c.check(off, n, c.EraseSize()); err != nil {
		return err
	}
	return c.span(off, n, func(f hw.Flash, poff, _, l int64) error { return f.Erase(poff, l) })
}
