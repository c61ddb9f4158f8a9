package mtdtest

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"meterupd/boards/mtd"
)

// ErrProgrammedTwice: a NAND page was programmed twice without an erase.
var ErrProgrammedTwice = errors.New("mtdtest: nand page programmed twice")

// Chip is one fake MTD device.
type Chip struct {
	mu         sync.Mutex
	info       mtd.Info
	data       []byte
	programmed []bool         // per page (NAND)
	bad        []bool         // per block: the OOB bad-block marker
	failErase  []bool         // per block: the next erase fails with EIO
	failProg   []bool         // per block: the next program fails with EIO
	rot        map[int64]bool // page -> true: uncorrectable, false: bitflip the ECC corrects
	ecc        mtd.ECCStats
	Erases     []int // per block
	Programs   []int // per block (pages)
	closed     bool
}

var (
	_ mtd.Device    = (*Chip)(nil)
	_ mtd.ECCStater = (*Chip)(nil)
)

// NewNAND returns an erased SLC NAND of size bytes, with the given erase
// block, page and OOB sizes, and the listed blocks marked bad at the factory.
func NewNAND(size, eraseSize, pageSize, oobSize int64, factoryBad ...int) *Chip {
	c := newChip(mtd.Info{Type: mtd.TypeNAND, Size: size, EraseSize: eraseSize, WriteSize: pageSize, OOBSize: oobSize})
	for _, b := range factoryBad {
		c.bad[b] = true
	}
	return c
}

// NewNOR returns an erased NOR flash.
func NewNOR(size, eraseSize int64) *Chip {
	return newChip(mtd.Info{Type: mtd.TypeNOR, Size: size, EraseSize: eraseSize, WriteSize: 1})
}

func newChip(info mtd.Info) *Chip {
	blocks := int(info.Size / info.EraseSize)
	c := &Chip{
		info:       info,
		data:       make([]byte, info.Size),
		programmed: make([]bool, info.Size/info.WriteSize),
		bad:        make([]bool, blocks),
		failErase:  make([]bool, blocks),
		failProg:   make([]bool, blocks),
		Erases:     make([]int, blocks),
		Programs:   make([]int, blocks),
	}
	for i := range c.data {
		c.data[i] = 0xFF
	}
	return c
}

// WearOut makes the next erase (erase true) or program of block fail with EIO.
func (c *Chip) WearOut(block int, erase bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if erase {
		c.failErase[block] = true
	} else {
		c.failProg[block] = true
	}
}

// Bytes returns a copy of the raw contents.
func (c *Chip) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.data...)
}

func (c *Chip) Info() (mtd.Info, error) { return c.info, nil }

// Rot makes reads of the page at off meet a bitflip: one the ECC corrects,
// or an uncorrectable error, which the kernel's read() does not report: only
// the ECC counters show it (ECCGETSTATS). An erase of the block heals it.
func (c *Chip) Rot(off int64, uncorrectable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rot == nil {
		c.rot = map[int64]bool{}
	}
	c.rot[off/c.info.WriteSize] = uncorrectable
}

func (c *Chip) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if off < 0 || off > c.info.Size {
		return 0, syscall.EINVAL
	}
	n := copy(p, c.data[off:])
	if n > 0 {
		for pg := off / c.info.WriteSize; pg <= (off+int64(n)-1)/c.info.WriteSize; pg++ {
			if bad, ok := c.rot[pg]; ok {
				if bad {
					c.ecc.Failed++
				} else {
					c.ecc.Corrected++
				}
			}
		}
	}
	return n, nil
}

// ECCStats reports the ECC counters, as ECCGETSTATS does.
func (c *Chip) ECCStats() (mtd.ECCStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ecc, nil
}

func (c *Chip) WriteAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.info.WriteSize
	if off < 0 || off+int64(len(p)) > c.info.Size || off%ws != 0 || int64(len(p))%ws != 0 {
		return 0, syscall.EINVAL
	}
	nand := c.info.Type.IsNAND()
	for i := int64(0); i < int64(len(p)); i += ws {
		pos := off + i
		blk := pos / c.info.EraseSize
		if nand && (c.bad[blk] || c.failProg[blk]) {
			c.failProg[blk] = false
			// A failed program leaves the page partly programmed.
			for j := range ws / 2 {
				c.data[pos+j] &= p[i+j]
			}
			return int(i), syscall.EIO
		}
		if nand {
			if c.programmed[pos/ws] {
				return int(i), fmt.Errorf("%w: page at %#x", ErrProgrammedTwice, pos)
			}
			c.programmed[pos/ws] = true
		}
		for j := range ws {
			c.data[pos+j] &= p[i+j]
		}
		c.Programs[blk]++
	}
	return len(p), nil
}

func (c *Chip) Erase(off, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.info.EraseSize
	if off < 0 || n <= 0 || off+n > c.info.Size || off%es != 0 || n%es != 0 {
		return syscall.EINVAL
	}
	for b := off / es; b < (off+n)/es; b++ {
		if c.info.Type.IsNAND() && c.bad[b] {
			return syscall.EIO
		}
		if c.failErase[b] {
			c.failErase[b] = false
			// A failed erase leaves the block partly erased.
			for i := b * es; i < b*es+es/2; i++ {
				c.data[i] = 0xFF
			}
			return syscall.EIO
		}
		for i := b * es; i < (b+1)*es; i++ {
			c.data[i] = 0xFF
		}
		for pg := b * es / c.info.WriteSize; pg < (b+1)*es/c.info.WriteSize; pg++ {
			c.programmed[pg] = false
			delete(c.rot, pg)
		}
		c.Erases[b]++
	}
	return nil
}

func (c *Chip) IsBad(off int64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if off < 0 || off >= c.info.Size {
		return false, syscall.EINVAL
	}
	if !c.info.Type.IsNAND() {
		return false, nil
	}
	return c.bad[off/c.info.EraseSize], nil
}

func (c *Chip) MarkBad(off int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.info.Type.IsNAND() {
		return syscall.EOPNOTSUPP
	}
	if off < 0 || off >= c.info.Size {
		return syscall.EINVAL
	}
	c.bad[off/c.info.EraseSize] = true
	return nil
}

func (c *Chip) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("mtdtest: closed twice")
	}
	c.closed = true
	return nil
}
