// Package flashfake is the behavioural hw.Flash fake: the rules of real
// flash parts and the faults that power cuts and failing parts cause, in
// one place. Flash is an in-memory partition (the journal's and the boot
// environment's tests use it; journal/internal/flashtest is this package
// under its former name); rules.go holds the rules themselves (kinds of
// part, the program rule, tears, NAND page tracking), which the sim board
// (boards/sim) applies to its partition files.
//
// Rules, as hw.Flash documents them: Erase sets bytes to the erased value
// and takes erase-block-aligned ranges; WriteAt takes write-unit-aligned
// ranges and can only clear bits (NOR erased to 0xFF), only set bits
// physically (NOR erased to 0x00, presented inverted), or, on NAND, program
// a write unit once between erases and only while it is fully erased. A
// violation fails with hw.ErrAlignment or hw.ErrNotErased and changes
// nothing.
//
// Faults:
//   - a power cut at mutating operation k (1-based, counting WriteAt and
//     Erase): before the operation runs, after it completes, torn (a program
//     leaves a prefix written and one byte with only some of its bits
//     cleared; an erase leaves a prefix erased and one byte half erased), or
//     garbage (the operation's range is filled with random bytes, as an
//     unsynced write can be on a block device), or out of order (a random
//     subset of the write units, or erase blocks, is done). After a cut every call fails
//     with ErrPowerCut until PowerOn.
//   - I/O errors at operation k, once or from k on (persistent), at random
//     with a given rate, or on every read.
//   - bad blocks: program error, erase error, silent program no-op, silent
//     erase no-op.
//   - FlipBit for corruption at rest.
//
// Operations are counted only while the flash is powered; Ops reports the
// count since the last PowerOn (or New).
package flashfake

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"meterupd/boards/hw"
)

// CutMode says what a power cut does to the operation it interrupts.
type CutMode int

const (
	CutBefore  CutMode = iota // the operation does not run
	CutAfter                  // the operation completes, then power is lost
	CutTorn                   // the operation is partly done
	CutGarbage                // the operation's range is filled with random bytes
	CutOOO                    // out of order: a random subset of write units (or blocks) is done
)

func (m CutMode) String() string {
	switch m {
	case CutBefore:
		return "before"
	case CutAfter:
		return "after"
	case CutTorn:
		return "torn"
	case CutGarbage:
		return "garbage"
	case CutOOO:
		return "ooo"
	}
	return fmt.Sprintf("CutMode(%d)", int(m))
}

// BadMode is how a bad block misbehaves.
type BadMode int

const (
	BadProgram       BadMode = iota + 1 // WriteAt fails with hw.ErrBadBlock
	BadErase                            // Erase fails with hw.ErrBadBlock
	BadSilentProgram                    // WriteAt reports success, changes nothing
	BadSilentErase                      // Erase reports success, changes nothing
)

var (
	// ErrPowerCut is returned by every call after a simulated power cut.
	ErrPowerCut = errors.New("flashfake: power cut")
	// ErrIO is an injected I/O error.
	ErrIO = errors.New("flashfake: input/output error")
)

// Flash is an in-memory hw.Flash with fault injection. It is not safe for
// concurrent use.
type Flash struct {
	mem        []byte
	eraseSize  int64
	writeSize  int64
	kind       Kind
	pages      Pages // NAND: pages programmed since their erase
	rng        *rand.Rand
	ops        int // mutating operations since power-on
	cutAt      int // 0: none
	cutMode    CutMode
	tearAt     int64 // >= 0: a CutTorn operation tears at this byte (TearAt)
	seed       uint64
	cut        bool
	failAt     int // 0: none
	failPersis bool
	failReads  bool
	failRate   float64
	bad        map[int64]BadMode

	// Totals since New, for figures: Programs and Erases count successful
	// calls (an erase of n blocks counts n), ProgramBytes and ReadBytes
	// the bytes programmed and read.
	Programs, Erases, ProgramBytes, ReadBytes int64
	// Violations counts calls that broke a flash rule (misaligned, or
	// programming over unerased bytes). A real part may accept such a call
	// and corrupt data silently; tests assert it stays 0.
	Violations int
}

var _ hw.Flash = (*Flash)(nil)

// New returns an erased flash of size bytes. seed drives torn and garbage
// contents, so a failing run can be replayed.
func New(size, eraseSize, writeSize int64, seed uint64) *Flash {
	if eraseSize <= 0 || writeSize <= 0 || size%eraseSize != 0 || eraseSize%writeSize != 0 {
		panic("flashfake: bad geometry") // test setup bug, not input
	}
	f := &Flash{
		mem:       make([]byte, size),
		eraseSize: eraseSize,
		writeSize: writeSize,
		kind:      NORErasedFF,
		tearAt:    -1,
		seed:      seed,
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		bad:       map[int64]BadMode{},
	}
	for i := range f.mem {
		f.mem[i] = 0xFF
	}
	return f
}

// SetNAND switches to NAND rules (on) or back to NOR erased to 0xFF.
func (f *Flash) SetNAND(on bool) {
	if on {
		f.SetKind(NAND)
	} else {
		f.SetKind(NORErasedFF)
	}
}

// SetKind sets the kind of part. Set it before the first operation: the
// content is kept as presented.
func (f *Flash) SetKind(k Kind) {
	if !k.Valid() {
		panic("flashfake: unknown kind") // test setup bug, not input
	}
	f.kind = k
}

// Kind reports the kind of part.
func (f *Flash) Kind() Kind { return f.kind }

// Raw returns a copy of the physical content: as Bytes, inverted on a
// NORErased00 part (erased bytes 0x00).
func (f *Flash) Raw() []byte {
	b := f.Bytes()
	if f.kind == NORErased00 {
		Invert(b, b)
	}
	return b
}

// Size implements hw.Flash.
func (f *Flash) Size() int64 { return int64(len(f.mem)) }

// EraseSize implements hw.Flash.
func (f *Flash) EraseSize() int64 { return f.eraseSize }

// WriteSize implements hw.Flash.
func (f *Flash) WriteSize() int64 { return f.writeSize }

// Bytes returns a copy of the whole flash content.
func (f *Flash) Bytes() []byte { return append([]byte(nil), f.mem...) }

// Load replaces the flash content with b (len(b) must equal Size).
func (f *Flash) Load(b []byte) {
	if len(b) != len(f.mem) {
		panic("flashfake: Load size mismatch")
	}
	copy(f.mem, b)
}

// Ops reports the mutating operations attempted since power-on.
func (f *Flash) Ops() int { return f.ops }

// CutAt arms a power cut at mutating operation k after the last power-on
// (k >= 1); k = 0 disarms.
func (f *Flash) CutAt(k int, m CutMode) { f.cutAt, f.cutMode = k, m }

// TearAt makes a CutTorn cut deterministic: the operation completes its
// first n bytes and the byte at n is half done (a program applies half of
// its bits, an erase sets half of them); n >= the operation's length
// completes it. n < 0 restores random tears. Tests that enumerate every
// tear position use it.
func (f *Flash) TearAt(n int64) { f.tearAt = n }

// Mem returns the live content (not a copy), for tests that inspect or
// damage the flash at rest.
func (f *Flash) Mem() []byte { return f.mem }

// Clone returns a powered copy of the flash (the reboot of a test that
// keeps the cut original): same content, kind, bad blocks and NAND page
// state; no cut armed, no operations counted, the totals zero.
func (f *Flash) Clone() *Flash {
	c := New(int64(len(f.mem)), f.eraseSize, f.writeSize, f.seed)
	copy(c.mem, f.mem)
	c.kind, c.pages, c.tearAt = f.kind, f.pages.Clone(), f.tearAt
	c.failAt, c.failPersis, c.failReads, c.failRate = f.failAt, f.failPersis, f.failReads, f.failRate
	for b, m := range f.bad {
		c.bad[b] = m
	}
	return c
}

// Cut reports whether power has been cut.
func (f *Flash) Cut() bool { return f.cut }

// PowerOn ends a power cut and restarts operation counting. Armed cuts are
// disarmed; bad blocks and I/O faults stay.
func (f *Flash) PowerOn() { f.cut, f.ops, f.cutAt = false, 0, 0 }

// FailAt makes mutating operation k fail with ErrIO (and change nothing);
// with persistent, every mutating operation from k on fails. k = 0 clears.
func (f *Flash) FailAt(k int, persistent bool) { f.failAt, f.failPersis = k, persistent }

// FailRandom makes each mutating operation fail with ErrIO (changing
// nothing) with probability p, drawn from the seeded generator; 0 clears.
func (f *Flash) FailRandom(p float64) { f.failRate = p }

// FailReads makes every ReadAt fail with ErrIO while on.
func (f *Flash) FailReads(on bool) { f.failReads = on }

// SetBad marks the erase block at off as bad in mode m (0 clears).
func (f *Flash) SetBad(off int64, m BadMode) {
	b := off / f.eraseSize
	if m == 0 {
		delete(f.bad, b)
		return
	}
	f.bad[b] = m
}

// FlipBit inverts one bit at rest (no operation is counted).
func (f *Flash) FlipBit(off int64, bit uint) { f.mem[off] ^= 1 << (bit & 7) }

// ReadAt implements io.ReaderAt.
func (f *Flash) ReadAt(p []byte, off int64) (int, error) {
	if f.cut {
		return 0, ErrPowerCut
	}
	if f.failReads {
		return 0, ErrIO
	}
	if off < 0 || off > int64(len(f.mem)) {
		return 0, fmt.Errorf("flashfake: read at %d: out of range", off)
	}
	n := copy(p, f.mem[off:])
	f.ReadBytes += int64(n)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// begin counts a mutating operation and reports whether it must be cut
// (and how) or fail.
func (f *Flash) begin() (cut bool, err error) {
	if f.cut {
		return false, ErrPowerCut
	}
	f.ops++
	if f.failAt > 0 && (f.ops == f.failAt || (f.failPersis && f.ops > f.failAt)) {
		return false, ErrIO
	}
	if f.failRate > 0 && f.rng.Float64() < f.failRate {
		return false, ErrIO
	}
	return f.cutAt > 0 && f.ops == f.cutAt, nil
}

// WriteAt implements io.WriterAt: it programs p at off.
func (f *Flash) WriteAt(p []byte, off int64) (int, error) {
	if f.cut {
		return 0, ErrPowerCut
	}
	n := int64(len(p))
	if off < 0 || off%f.writeSize != 0 || n%f.writeSize != 0 || off+n > int64(len(f.mem)) || off+n < off {
		f.Violations++
		return 0, fmt.Errorf("flashfake: program %d bytes at %d: %w", n, off, hw.ErrAlignment)
	}
	if i := NotErased(f.mem[off:off+n], p); i >= 0 {
		f.Violations++
		return 0, fmt.Errorf("flashfake: program at %d: %w", off+int64(i), hw.ErrNotErased)
	}
	if f.kind == NAND {
		if pg := f.pages.Check(off, n, f.writeSize); pg >= 0 {
			f.Violations++
			return 0, fmt.Errorf("flashfake: NAND page at %d programmed twice without an erase: %w", pg*f.writeSize, hw.ErrNotErased)
		}
		if !AllErased(f.mem[off : off+n]) {
			f.Violations++
			return 0, fmt.Errorf("flashfake: program page at %d: %w", off, hw.ErrNotErased)
		}
	}
	for b := off / f.eraseSize; n > 0 && b <= (off+n-1)/f.eraseSize; b++ {
		if f.bad[b] == BadProgram {
			if _, err := f.begin(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("flashfake: program at %d: %w", off, hw.ErrBadBlock)
		}
	}
	cut, err := f.begin()
	if err != nil {
		return 0, err
	}
	if cut {
		f.cut = true
		switch f.cutMode {
		case CutBefore:
		case CutAfter:
			f.program(p, off)
		case CutTorn:
			switch {
			case f.tearAt >= 0:
				k := min(f.tearAt, n)
				f.program(p[:k], off)
				if k < n {
					f.mem[off+k] &= p[k] | 0xAA // half of the byte's bits
				}
			case n > 0:
				k := f.rng.Int64N(n)
				f.program(p[:k], off)
				// The torn byte: only some of the bits to clear are cleared.
				clear := ^p[k] & f.mem[off+k]
				f.mem[off+k] &^= clear & byte(f.rng.Uint32())
			}
			if f.kind == NAND {
				// A torn page program used up the page all the same.
				f.pages.Mark(off, n, f.writeSize, int64(len(f.mem)))
			}
		case CutGarbage:
			for i := int64(0); i < n; i++ {
				f.mem[off+i] = byte(f.rng.Uint32())
			}
		case CutOOO:
			for u := int64(0); u < n; u += f.writeSize {
				if f.rng.IntN(2) == 0 {
					f.program(p[u:u+f.writeSize], off+u)
				}
			}
		}
		return 0, ErrPowerCut
	}
	f.program(p, off)
	f.Programs++
	f.ProgramBytes += n
	return int(n), nil
}

func (f *Flash) program(p []byte, off int64) {
	if f.kind == NAND && len(p) > 0 {
		f.pages.Mark(off, int64(len(p)), f.writeSize, int64(len(f.mem)))
	}
	if len(f.bad) == 0 {
		for i, c := range p {
			f.mem[off+int64(i)] &= c
		}
		return
	}
	for i := range p {
		b := (off + int64(i)) / f.eraseSize
		if f.bad[b] == BadSilentProgram {
			continue
		}
		f.mem[off+int64(i)] &= p[i]
	}
}

// Erase implements hw.Flash.
func (f *Flash) Erase(off, n int64) error {
	if f.cut {
		return ErrPowerCut
	}
	if off < 0 || n < 0 || off%f.eraseSize != 0 || n%f.eraseSize != 0 || off+n > int64(len(f.mem)) || off+n < off {
		f.Violations++
		return fmt.Errorf("flashfake: erase %d bytes at %d: %w", n, off, hw.ErrAlignment)
	}
	for b := off / f.eraseSize; b < (off+n)/f.eraseSize; b++ {
		if f.bad[b] == BadErase {
			if _, err := f.begin(); err != nil {
				return err
			}
			return fmt.Errorf("flashfake: erase at %d: %w", b*f.eraseSize, hw.ErrBadBlock)
		}
	}
	cut, err := f.begin()
	if err != nil {
		return err
	}
	if cut {
		f.cut = true
		switch f.cutMode {
		case CutBefore:
		case CutAfter:
			f.erase(off, n)
		case CutTorn:
			switch {
			case f.tearAt >= 0:
				k := min(f.tearAt, n)
				f.erase(off, k)
				if k < n {
					f.mem[off+k] |= 0x55 // half erased
				}
			case n > 0:
				k := f.rng.Int64N(n)
				f.erase(off, k)
				f.mem[off+k] |= byte(f.rng.Uint32())
			}
		case CutGarbage:
			for i := int64(0); i < n; i++ {
				f.mem[off+i] = byte(f.rng.Uint32())
			}
		case CutOOO:
			for b := off; b < off+n; b += f.eraseSize {
				if f.rng.IntN(2) == 0 {
					f.erase(b, f.eraseSize)
				}
			}
		}
		return ErrPowerCut
	}
	f.erase(off, n)
	f.Erases += n / f.eraseSize
	return nil
}

func (f *Flash) erase(off, n int64) {
	f.pages.Clear(off, n, f.writeSize)
	if len(f.bad) == 0 {
		for i := off; i < off+n; i++ {
			f.mem[i] = 0xFF
		}
		return
	}
	for i := off; i < off+n; i++ {
		if f.bad[i/f.eraseSize] == BadSilentErase {
			continue
		}
		f.mem[i] = 0xFF
	}
}
