package sim

import (
	"math/rand/v2"

	"meterupd/boards/flashfake"
)

// CutMode says what happens to the flash operation at which the power is cut.
type CutMode int

const (
	// CutBefore: the power dies before operation CutAt starts; it is not done.
	CutBefore CutMode = iota
	// CutAfter: operation CutAt completes, then the power dies before the
	// caller learns it (the call still fails with ErrPowerCut).
	CutAfter
	// CutTorn: operation CutAt is partly done. A torn program programs a
	// random prefix of p, and the byte at the tear gets only a random
	// subset of the bits it should have cleared. A torn erase erases the
	// blocks before a random tear block; in the tear block a random subset
	// of the bytes is erased (0xFF), the rest keep their old content.
	CutTorn
)

// String names the mode as flashfake does: the sim's modes are the first
// three of flashfake.CutMode, with the same values.
func (m CutMode) String() string { return flashfake.CutMode(m).String() }

// Faults are the failures injected into a Board opened WithFaults.
// Operation numbers are 1-based and count flash operations (see Board.Ops)
// from Open. Partitions are named as the files are: "A", "B", "F",
// "journal", "common", "bootctl".
type Faults struct {
	// CutAt is the operation at which the power is cut; 0 means never.
	// After the cut the board is dead: every flash operation and
	// Boot().Store fail with ErrPowerCut; reads still work.
	CutAt int64
	Mode  CutMode
	// Rand decides the torn extent; nil uses a fixed seed.
	Rand *rand.Rand

	// BadBlocks lists, per partition, erase-block indexes where an erase
	// or program fails with hw.ErrBadBlock and changes nothing.
	BadBlocks map[string][]int64

	// SilentBlocks lists, per partition, erase blocks where erase and
	// program report success but change nothing (littlefs's silent
	// no-op bad-block mode): only a read-back notices.
	SilentBlocks map[string][]int64

	// ReadErrBlocks lists, per partition, erase blocks whose reads fail
	// with ErrIO. Reads are not operations: this does not shift CutAt.
	ReadErrBlocks map[string][]int64

	// IOErrAt is an operation that fails with ErrIO and is not done; with
	// IOErrPersistent every operation after it fails too. 0 means never.
	IOErrAt         int64
	IOErrPersistent bool

	// FlipReads lists, per partition, byte offsets of which one bit reads
	// flipped: bit off%8 of the byte at off. The stored data is unchanged.
	FlipReads map[string][]int64
}

// blockIn reports whether [off, off+n) on part touches one of the blocks
// listed for part in m, and which.
func (f *Faults) blockIn(m map[string][]int64, part string, off, n, eraseSize int64) (int64, bool) {
	if f == nil {
		return 0, false
	}
	for _, blk := range m[part] {
		start := blk * eraseSize
		if start < off+n && off < start+eraseSize {
			return blk, true
		}
	}
	return 0, false
}

// flip applies the read flips of part to p, which was read at off.
func (f *Faults) flip(part string, p []byte, off int64) {
	if f == nil {
		return
	}
	for _, o := range f.FlipReads[part] {
		if o >= off && o < off+int64(len(p)) {
			p[o-off] ^= 1 << (o % 8)
		}
	}
}
