package sim

import (
	"fmt"
	"io"
	"os"

	"meterupd/boards/flashfake"
	"meterupd/boards/hw"
)

// erasedChunk is 64 KiB of the (logical) erased value; it is never written to.
var erasedChunk = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = 0xFF
	}
	return b
}()

// flash is one partition file under the flash rules.
type flash struct {
	b        *Board
	name     string
	f        *os.File // nil when not held open (WithoutHeldFiles)
	path     string
	mode     int
	size     int64
	readOnly bool
	inverted bool // nor-00: the file holds the physical bytes, the inverse of what the board presents

	// pages tracks, on NAND, the pages (write units) programmed since the
	// block's last erase during this Open (see Geometry.Flash).
	pages flashfake.Pages
	// progs counts the programs of each tracking unit since Open: what
	// Board.Programs reports.
	progs []uint32
}

// trackUnit is the granularity of Board.Programs: the write size, but at
// least 256 bytes, so that a byte-writable part does not need a counter
// per byte.
func (f *flash) trackUnit() int64 { return max(f.b.geo.WriteSize, 256) }

// read reads the partition file and presents it as the board does.
func (f *flash) read(p []byte, off int64) error {
	if err := f.file(func(h *os.File) error { _, err := h.ReadAt(p, off); return err }); err != nil {
		return err
	}
	if f.inverted {
		flashfake.Invert(p, p)
	}
	return nil
}

// file runs op on the partition file: the one held open, or one opened
// for this operation alone (WithoutHeldFiles).
func (f *flash) file(op func(*os.File) error) error {
	if f.f != nil {
		return op(f.f)
	}
	h, err := os.OpenFile(f.path, f.mode, 0)
	if err != nil {
		return err
	}
	err = op(h)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	return err
}

func (f *flash) writeAt(p []byte, off int64) error {
	return f.file(func(h *os.File) error { _, err := h.WriteAt(p, off); return err })
}

// countPrograms records a program of [off, off+n). b.mu is held.
func (f *flash) countPrograms(off, n int64) {
	u := f.trackUnit()
	if f.progs == nil {
		f.progs = make([]uint32, (f.size+u-1)/u)
	}
	for i := off / u; i < (off+n+u-1)/u; i++ {
		f.progs[i]++
	}
	if f.b.geo.Kind() == NAND {
		f.pages.Mark(off, n, f.b.geo.WriteSize, f.size)
	}
}

var _ hw.Flash = (*flash)(nil)

func (f *flash) Size() int64      { return f.size }
func (f *flash) EraseSize() int64 { return f.b.geo.EraseSize }
func (f *flash) WriteSize() int64 { return f.b.geo.WriteSize }

// ReadAt follows io.ReaderAt: reading at or past the end returns io.EOF.
// Injected read flips apply to what is returned, never to what is stored.
func (f *flash) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("sim: read %s at %d: %w", f.name, off, ErrOutOfRange)
	}
	b := f.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrClosed
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.size-off))
	if err := f.read(p[:n], off); err != nil {
		return 0, fmt.Errorf("sim: read %s at %d: %w", f.name, off, err)
	}
	if fa := b.faults; fa != nil {
		if blk, bad := fa.blockIn(fa.ReadErrBlocks, f.name, off, int64(n), b.geo.EraseSize); bad {
			return 0, fmt.Errorf("sim: read %s at %d: block %d: %w", f.name, off, blk, ErrIO)
		}
		fa.flip(f.name, p[:n], off)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// check rejects what never reaches the flash: F, misalignment, out of range.
func (f *flash) check(op string, off, n, unit int64) error {
	if f.readOnly {
		f.b.mu.Lock()
		f.b.forbidden++
		f.b.mu.Unlock()
		return fmt.Errorf("sim: %s %s at %d: %w", op, f.name, off, hw.ErrReadOnly)
	}
	if off < 0 || n < 0 || off%unit != 0 || n%unit != 0 {
		return fmt.Errorf("sim: %s %s at %d len %d (unit %d): %w", op, f.name, off, n, unit, hw.ErrAlignment)
	}
	if off > f.size-n {
		return fmt.Errorf("sim: %s %s at %d len %d (size %d): %w", op, f.name, off, n, f.size, ErrOutOfRange)
	}
	return nil
}

// WriteAt programs p at off. Offset and length are multiples of the write
// size; programming may only clear bits (a 1 over a 0 fails with an error
// wrapping hw.ErrNotErased and changes nothing). On NAND a page may be
// programmed once between erases, and only when it is fully erased.
func (f *flash) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check("program", off, int64(len(p)), f.b.geo.WriteSize); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	b := f.b
	b.mu.Lock()
	defer b.mu.Unlock()
	fate, err := b.startOp("program", f.name, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	old := b.buf(len(p))
	if err := f.read(old, off); err != nil {
		return 0, b.failOp(fate, fmt.Errorf("sim: program %s at %d: %w", f.name, off, err))
	}
	if b.geo.Kind() == NAND {
		// A page may be programmed once since its erase (this Open's
		// programs are tracked; a page programmed before the last power-on
		// shows in its content, as it is not fully erased).
		if pg := f.pages.Check(off, int64(len(p)), b.geo.WriteSize); pg >= 0 || !flashfake.AllErased(old) {
			return 0, b.failOp(fate, fmt.Errorf("sim: program %s at %d: NAND page already programmed since its erase: %w",
				f.name, off, hw.ErrNotErased))
		}
	}
	if i := flashfake.NotErased(old, p); i >= 0 {
		return 0, b.failOp(fate, fmt.Errorf("sim: program %s at %d: byte %#02x over %#02x at %d: %w",
			f.name, off, p[i], old[i], off+int64(i), hw.ErrNotErased))
	}
	w := p
	if fate == opTorn {
		w = flashfake.TearProgram(old, p, b.rnd)
	}
	if err := f.store(w, off); err != nil {
		return 0, b.failOp(fate, fmt.Errorf("sim: program %s at %d: %w", f.name, off, err))
	}
	f.countPrograms(off, int64(len(w)))
	if fate != opDo {
		return 0, b.cut("program", f.name, off)
	}
	return len(p), nil
}

// Erase sets n bytes at off to the erased value; both are multiples of the
// erase size. A multi-block erase is one operation.
func (f *flash) Erase(off, n int64) error {
	es := f.b.geo.EraseSize
	if err := f.check("erase", off, n, es); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	b := f.b
	b.mu.Lock()
	defer b.mu.Unlock()
	fate, err := b.startOp("erase", f.name, off, n)
	if err != nil {
		return err
	}
	end := off + n
	if fate == opTorn {
		end = off + b.rnd.Int64N(n/es)*es // blocks before the tear block
	}
	for o := off; o < end; o += int64(len(erasedChunk)) {
		if err := f.store(erasedChunk[:min(int64(len(erasedChunk)), end-o)], o); err != nil {
			return b.failOp(fate, fmt.Errorf("sim: erase %s at %d: %w", f.name, off, err))
		}
	}
	f.pages.Clear(off, end-off, f.b.geo.WriteSize) // fully erased blocks: their pages may be programmed again
	if fate == opTorn {
		blk := b.buf(int(es))
		if err := f.read(blk, end); err != nil {
			return b.failOp(fate, fmt.Errorf("sim: erase %s at %d: %w", f.name, off, err))
		}
		for i := 0; i < len(blk); i += 64 {
			bits := b.rnd.Uint64()
			for j := i; j < min(i+64, len(blk)); j++ {
				if bits&(1<<(j-i)) != 0 {
					blk[j] = 0xFF
				}
			}
		}
		if err := f.store(blk, end); err != nil {
			return b.failOp(fate, fmt.Errorf("sim: erase %s at %d: %w", f.name, off, err))
		}
	}
	if fate != opDo {
		return b.cut("erase", f.name, off)
	}
	return nil
}

// store writes p at off into the file, except into silently bad blocks,
// which keep their content while the operation reports success. p is in
// the board's (logical) view; an inverted part stores its inverse.
func (f *flash) store(p []byte, off int64) error {
	if f.inverted {
		if cap(f.b.inv) < len(p) {
			f.b.inv = make([]byte, len(p))
		}
		q := f.b.inv[:len(p)]
		flashfake.Invert(q, p)
		p = q
	}
	fa := f.b.faults
	if fa == nil || len(fa.SilentBlocks[f.name]) == 0 {
		return f.writeAt(p, off)
	}
	es := f.b.geo.EraseSize
	for len(p) > 0 {
		n := min(int64(len(p)), es-off%es) // up to the end of this block
		if _, silent := fa.blockIn(fa.SilentBlocks, f.name, off, n, es); !silent {
			if err := f.writeAt(p[:n], off); err != nil {
				return err
			}
		}
		p, off = p[n:], off+n
	}
	return nil
}

// fate is what an operation that passed the fault checks does.
type fate int

const (
	opDo    fate = iota // done
	opAfter             // done, then the power dies
	opTorn              // partly done, then the power dies
)

// startOp counts one flash operation and applies the faults that stop it
// before it starts. b.mu is held.
func (b *Board) startOp(op, part string, off, n int64) (fate, error) {
	if b.closed {
		return 0, ErrClosed
	}
	if b.dead {
		return 0, fmt.Errorf("sim: %s %s at %d: %w", op, part, off, ErrPowerCut)
	}
	b.ops++
	k := b.ops
	f := b.faults
	if f == nil {
		return opDo, nil
	}
	fa := opDo
	if f.CutAt == k {
		switch f.Mode {
		case CutAfter:
			fa = opAfter
		case CutTorn:
			fa = opTorn
		default:
			return 0, b.cut(op, part, off)
		}
	}
	if b.ioFailing || f.IOErrAt == k {
		b.ioFailing = f.IOErrPersistent
		return 0, b.failOp(fa, fmt.Errorf("sim: %s %s at %d (op %d): %w", op, part, off, k, ErrIO))
	}
	if blk, bad := f.blockIn(f.BadBlocks, part, off, n, b.geo.EraseSize); bad {
		return 0, b.failOp(fa, fmt.Errorf("sim: %s %s at %d: block %d: %w", op, part, off, blk, hw.ErrBadBlock))
	}
	return fa, nil
}

// failOp returns err; if the power was to be cut at this operation, the
// board dies all the same.
func (b *Board) failOp(fa fate, err error) error {
	if fa != opDo {
		b.dead = true
	}
	return err
}

// cut kills the board and returns the power-cut error of the current op.
func (b *Board) cut(op, part string, off int64) error {
	b.dead = true
	return fmt.Errorf("sim: %s %s at %d (op %d): %w", op, part, off, b.ops, ErrPowerCut)
}

// buf returns a scratch buffer of n bytes. b.mu is held.
func (b *Board) buf(n int) []byte {
	if cap(b.scratch) < n {
		b.scratch = make([]byte, n)
	}
	return b.scratch[:n]
}
