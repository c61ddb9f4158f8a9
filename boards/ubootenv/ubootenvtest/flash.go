package ubootenvtest

import (
	"meterupd/boards/flashfake"
	"meterupd/boards/hw"
)

// ErrPowerCut is what the fake flash returns once power is gone.
var ErrPowerCut = flashfake.ErrPowerCut

// CutMode is when, relative to the chosen operation, the power goes.
type CutMode = flashfake.CutMode

// The cut modes these tests use.
const (
	CutBefore = flashfake.CutBefore // the operation does not happen
	CutAfter  = flashfake.CutAfter  // the operation completes, then power goes
	CutTorn   = flashfake.CutTorn   // the operation stops after TornAt bytes, the next byte half done
)

// Flash is the behavioural flash fake of boards/flashfake (erase before
// program, NOR programs only clear bits, NAND programs each page once,
// aligned operations, power cuts) with the field-based controls the boot
// environment's power-cut tests use: they enumerate every tear position
// (TornAt) and read the sizes of the operations (OpSizes). It loses power
// at operation CutOp (1-based; WriteAt and Erase count, reads do not).
type Flash struct {
	// Mem is the flash contents (the fake's live memory).
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

	core *flashfake.Flash
}

var _ hw.Flash = (*Flash)(nil)

func wrap(c *flashfake.Flash) *Flash { return &Flash{Mem: c.Mem(), core: c} }

// NewNOR returns an erased NOR flash (write unit 1 byte).
func NewNOR(size, eraseSize int64) *Flash { return wrap(flashfake.New(size, eraseSize, 1, 1)) }

// NewNAND returns an erased NAND flash with pages of page bytes.
func NewNAND(size, eraseSize, page int64) *Flash {
	c := flashfake.New(size, eraseSize, page, 1)
	c.SetKind(flashfake.NAND)
	return wrap(c)
}

// Clone returns a powered copy of the flash contents (the reboot).
func (f *Flash) Clone() *Flash { return wrap(f.core.Clone()) }

func (f *Flash) Size() int64      { return f.core.Size() }
func (f *Flash) EraseSize() int64 { return f.core.EraseSize() }
func (f *Flash) WriteSize() int64 { return f.core.WriteSize() }

func (f *Flash) ReadAt(p []byte, off int64) (int, error) { return f.core.ReadAt(p, off) }

// op runs one mutating operation of n bytes on the core with the cut the
// fields ask for, and counts it.
func (f *Flash) op(n int64, do func() error) error {
	if f.CutOp > 0 {
		f.core.CutAt(f.CutOp, f.Mode)
		f.core.TearAt(f.TornAt)
	}
	before := f.core.Ops()
	err := do()
	if f.core.Ops() > before {
		f.Ops = f.core.Ops()
		f.OpSizes = append(f.OpSizes, n)
	}
	return err
}

func (f *Flash) WriteAt(p []byte, off int64) (int, error) {
	var n int
	err := f.op(int64(len(p)), func() (err error) {
		n, err = f.core.WriteAt(p, off)
		return err
	})
	return n, err
}

func (f *Flash) Erase(off, n int64) error {
	return f.op(n, func() error { return f.core.Erase(off, n) })
}
