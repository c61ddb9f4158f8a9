package mtd

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"sync"

	"meterupd/boards/hw"
)

// Type is the MTD device type MEMGETINFO reports (include/uapi/mtd/mtd-abi.h).
type Type uint8

// MTD types this driver handles.
const (
	TypeRAM     Type = 1 // MTD_RAM: mtdram, byte-writable
	TypeNOR     Type = 3 // MTD_NORFLASH
	TypeNAND    Type = 4 // MTD_NANDFLASH (SLC)
	TypeMLCNAND Type = 8 // MTD_MLCNANDFLASH
)

// IsNAND reports whether pages are programmed once per erase.
func (t Type) IsNAND() bool { return t == TypeNAND || t == TypeMLCNAND }

// Info is the geometry MEMGETINFO reports.
type Info struct {
	Type      Type
	Size      int64 // bytes
	EraseSize int64 // erase block
	WriteSize int64 // page on NAND, 1 on NOR
	OOBSize   int64 // out-of-band bytes per page (NAND)
}

// Device is one opened MTD character device: the syscalls the driver makes.
// The Linux implementation wraps /dev/mtdN; mtdtest.NAND is an in-memory chip.
type Device interface {
	// Info reports the geometry (MEMGETINFO).
	Info() (Info, error)
	// ReadAt reads raw data (pread).
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt programs whole pages (pwrite).
	WriteAt(p []byte, off int64) (int, error)
	// Erase erases n bytes at off, whole erase blocks (MEMERASE64).
	Erase(off, n int64) error
	// IsBad reports the bad-block marker of the block at off (MEMGETBADBLOCK).
	IsBad(off int64) (bool, error)
	// MarkBad sets the bad-block marker of the block at off (MEMSETBADBLOCK).
	MarkBad(off int64) error
	Close() error
}

// ECCStater is an optional capability of a Device: the ECC counters of the
// whole MTD device (ECCGETSTATS). The kernel's read() hides ECC results (an
// uncorrectable page is returned as if it were good, see mtdchar_read), so
// the driver compares the Failed counter around each read.
type ECCStater interface {
	ECCStats() (ECCStats, error)
}

// ECCStats are the ECC counters of an MTD device since boot.
type ECCStats struct {
	Corrected uint32 // bitflips the ECC corrected
	Failed    uint32 // reads the ECC could not correct
	BadBlocks uint32
}

var (
	// ErrUncorrectable: a read hit a page the ECC could not correct; the
	// data returned is not trustworthy.
	ErrUncorrectable = errors.New("mtd: uncorrectable ecc error")
	// ErrNotFound: no partition of that name in /proc/mtd.
	ErrNotFound = errors.New("mtd: partition not found")
	// ErrTooFewGoodBlocks: the partition has fewer good erase blocks than
	// the logical size needs.
	ErrTooFewGoodBlocks = errors.New("mtd: not enough good erase blocks")
	// ErrGeometry: the device reports a geometry the driver cannot use.
	ErrGeometry = errors.New("mtd: unusable geometry")
	// ErrRange: an operation reaches past the logical size.
	ErrRange = errors.New("mtd: range outside partition")
)

// options of Open and New.
type options struct {
	size     int64
	procSize int64 // the size /proc/mtd reports (64-bit), 0 if unknown
	readOnly bool
	open     func(path string, readOnly bool) (Device, error)
}

// Option configures Open and New.
type Option func(*options)

// WithSize fixes the logical size in bytes (a multiple of the erase size).
// Without it the logical size is every good block of the partition, which
// changes when a block goes bad: board files always pass it.
func WithSize(n int64) Option { return func(o *options) { o.size = n } }

// WithReadOnly opens the partition read-only: WriteAt and Erase fail with
// hw.ErrReadOnly (the fail-safe slot).
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithOpener replaces how Open opens /dev/mtdN (tests use a fake device).
func WithOpener(open func(path string, readOnly bool) (Device, error)) Option {
	return func(o *options) { o.open = open }
}

// Open opens the MTD partition called name, found in root/proc/mtd, as
// root/dev/mtdN. root "" means "/".
func Open(root, name string, opts ...Option) (*Flash, error) {
	o := options{open: openDevice}
	for _, fn := range opts {
		fn(&o)
	}
	if root == "" {
		root = "/"
	}
	parts, err := ReadPartitions(filepath.Join(root, "proc", "mtd"))
	if err != nil {
		return nil, err
	}
	p, ok := Find(parts, name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	o.procSize = p.Size
	dev, err := o.open(filepath.Join(root, "dev", "mtd"+strconv.Itoa(p.Index)), o.readOnly)
	if err != nil {
		return nil, fmt.Errorf("mtd: open %q: %w", name, err)
	}
	f, err := newFlash(dev, name, o)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return f, nil
}

// New wraps an opened device. Close closes dev.
func New(dev Device, name string, opts ...Option) (*Flash, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	return newFlash(dev, name, o)
}

// Flash is one MTD partition as an hw.Flash, with bad blocks skipped.
// It is safe for concurrent use.
type Flash struct {
	mu       sync.Mutex
	dev      Device
	name     string
	info     Info
	size     int64   // logical size, fixed
	blocks   []int64 // logical block i -> physical offset
	readOnly bool
	broken   error // sticky: the partition ran out of good blocks
	// corrected counts bitflips the ECC corrected in this partition's
	// reads: a block that keeps needing correction is worth rewriting.
	corrected int64
}

// Corrected reports how many bitflips the ECC corrected in reads through f.
func (f *Flash) Corrected() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.corrected
}

var _ hw.Flash = (*Flash)(nil)

func newFlash(dev Device, name string, o options) (*Flash, error) {
	info, err := dev.Info()
	if err != nil {
		return nil, fmt.Errorf("mtd: %s: get info: %w", name, err)
	}
	// MEMGETINFO's size is 32 bits: a partition of 4 GiB or more reports
	// its size modulo 4 GiB. /proc/mtd has all 64.
	if o.procSize > math.MaxUint32 && info.Size == o.procSize&math.MaxUint32 {
		info.Size = o.procSize
	}
	if info.EraseSize <= 0 || info.WriteSize <= 0 || info.Size <= 0 ||
		info.EraseSize%info.WriteSize != 0 || info.Size%info.EraseSize != 0 {
		return nil, fmt.Errorf("%w: %s: size %d, erase %d, write %d", ErrGeometry, name, info.Size, info.EraseSize, info.WriteSize)
	}
	f := &Flash{dev: dev, name: name, info: info, readOnly: o.readOnly}
	good, err := f.scan()
	if err != nil {
		return nil, err
	}
	f.size = o.size
	if f.size == 0 {
		f.size = int64(len(good)) * info.EraseSize
	}
	if f.size < 0 || f.size%info.EraseSize != 0 {
		return nil, fmt.Errorf("%w: %s: logical size %d is not a multiple of erase size %d", hw.ErrAlignment, name, f.size, info.EraseSize)
	}
	need := f.size / info.EraseSize
	if int64(len(good)) < need {
		return nil, fmt.Errorf("%w: %s: %d good of %d blocks, %d needed", ErrTooFewGoodBlocks, name, len(good), info.Size/info.EraseSize, need)
	}
	f.blocks = good[:need]
	return f, nil
}

// scan lists the physical offsets of the good blocks.
func (f *Flash) scan() ([]int64, error) {
	n := f.info.Size / f.info.EraseSize
	good := make([]int64, 0, n)
	for i := int64(0); i < n; i++ {
		off := i * f.info.EraseSize
		if f.info.Type.IsNAND() {
			bad, err := f.dev.IsBad(off)
			if err != nil {
				return nil, fmt.Errorf("mtd: %s: bad-block check at %#x: %w", f.name, off, err)
			}
			if bad {
				continue
			}
		}
		good = append(good, off)
	}
	return good, nil
}

// Info reports the device geometry.
func (f *Flash) Info() Info { return f.info }

// Size is the logical size.
func (f *Flash) Size() int64 { return f.size }

// EraseSize is the erase-block size.
func (f *Flash) EraseSize() int64 { return f.info.EraseSize }

// WriteSize is the program unit: a page on NAND, 1 on NOR.
func (f *Flash) WriteSize() int64 { return f.info.WriteSize }

// Physical reports the physical offset that logical offset off maps to.
func (f *Flash) Physical(off int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 || off >= f.size {
		return 0, fmt.Errorf("%w: offset %#x, size %#x", ErrRange, off, f.size)
	}
	if f.broken != nil {
		return 0, f.broken
	}
	return f.blocks[off/f.info.EraseSize] + off%f.info.EraseSize, nil
}

// Close closes the device.
func (f *Flash) Close() error { return f.dev.Close() }

// ReadAt reads from the logical partition, following io.ReaderAt. When the
// device reports ECC counters (ECCStater), a read that met an uncorrectable
// page fails with an error wrapping ErrUncorrectable.
func (f *Flash) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrRange, off)
	}
	if f.broken != nil {
		return 0, f.broken
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > f.size-off {
		p = p[:f.size-off]
	}
	ecc, _ := f.dev.(ECCStater)
	var before ECCStats
	if ecc != nil {
		var err error
		if before, err = ecc.ECCStats(); err != nil {
			ecc = nil // not supported by this device: reads go unchecked
		}
	}
	n := 0
	for n < len(p) {
		cur := off + int64(n)
		chunk := p[n:min(len(p), n+int(f.info.EraseSize-cur%f.info.EraseSize))]
		m, err := f.dev.ReadAt(chunk, f.blocks[cur/f.info.EraseSize]+cur%f.info.EraseSize)
		if err != nil && !(errors.Is(err, io.EOF) && m == len(chunk)) {
			return n, fmt.Errorf("mtd: %s: read at %#x: %w", f.name, cur, err)
		}
		if m < len(chunk) {
			return n, fmt.Errorf("mtd: %s: short read at %#x: %w", f.name, cur, io.ErrUnexpectedEOF)
		}
		if ecc != nil {
			after, err := ecc.ECCStats()
			if err != nil {
				return n, fmt.Errorf("mtd: %s: ecc stats: %w", f.name, err)
			}
			f.corrected += int64(after.Corrected - before.Corrected)
			if after.Failed != before.Failed {
				return n, fmt.Errorf("%w: %s: in %#x..%#x", ErrUncorrectable, f.name, cur, cur+int64(len(chunk)))
			}
			before = after
		}
		n += m
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt programs p at off. off and len(p) are multiples of WriteSize and
// the range must be erased (NAND) or only clear bits (NOR); otherwise it
// fails with hw.ErrAlignment or hw.ErrNotErased and writes nothing.
func (f *Flash) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(off, int64(len(p)), f.info.WriteSize); err != nil {
		return 0, err
	}
	// First pass: refuse before anything is written.
	buf := make([]byte, min(int64(len(p)), f.info.EraseSize))
	for n := 0; n < len(p); {
		cur := off + int64(n)
		l := min(len(p)-n, int(f.info.EraseSize-cur%f.info.EraseSize))
		old := buf[:l]
		if _, err := f.dev.ReadAt(old, f.phys(cur)); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("mtd: %s: read before program at %#x: %w", f.name, cur, err)
		}
		if i := f.unprogrammable(old, p[n:n+l]); i >= 0 {
			return 0, fmt.Errorf("%w: %s: at %#x", hw.ErrNotErased, f.name, cur+int64(i))
		}
		n += l
	}
	for n := 0; n < len(p); {
		cur := off + int64(n)
		l := min(len(p)-n, int(f.info.EraseSize-cur%f.info.EraseSize))
		phys := f.phys(cur)
		m, err := f.dev.WriteAt(p[n:n+l], phys)
		if err == nil && m < l {
			err = io.ErrShortWrite
		}
		if err != nil {
			return n, f.failed("program", cur, phys, err)
		}
		n += l
	}
	return len(p), nil
}

// Erase erases n bytes at off, both multiples of EraseSize.
func (f *Flash) Erase(off, n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(off, n, f.info.EraseSize); err != nil {
		return err
	}
	for cur := off; cur < off+n; cur += f.info.EraseSize {
		phys := f.phys(cur)
		if err := f.dev.Erase(phys, f.info.EraseSize); err != nil {
			return f.failed("erase", cur, phys, err)
		}
	}
	return nil
}

// check validates a write or erase range; it changes nothing.
func (f *Flash) check(off, n, unit int64) error {
	if f.readOnly {
		return fmt.Errorf("%w: %s", hw.ErrReadOnly, f.name)
	}
	if f.broken != nil {
		return f.broken
	}
	if off%unit != 0 || n%unit != 0 {
		return fmt.Errorf("%w: %s: offset %#x length %#x, unit %#x", hw.ErrAlignment, f.name, off, n, unit)
	}
	if off < 0 || n < 0 || off > math.MaxInt64-n || off+n > f.size {
		return fmt.Errorf("%w: %s: offset %#x length %#x, size %#x", ErrRange, f.name, off, n, f.size)
	}
	return nil
}

func (f *Flash) phys(off int64) int64 {
	return f.blocks[off/f.info.EraseSize] + off%f.info.EraseSize
}

// unprogrammable returns the index of the first byte of next that the chip
// cannot program over old, or -1.
func (f *Flash) unprogrammable(old, next []byte) int {
	if f.info.Type.IsNAND() {
		// A page is programmed once: every page written must be erased.
		ws := int(f.info.WriteSize)
		for pg := 0; pg < len(old); pg += ws {
			for i := pg; i < pg+ws && i < len(old); i++ {
				if old[i] != 0xFF {
					return i
				}
			}
		}
		return -1
	}
	for i := range next {
		if next[i]&^old[i] != 0 {
			return i
		}
	}
	return -1
}

// failed handles a failed erase or program: on NAND, an I/O error means the
// block wore out, so it is marked bad and the mapping recomputed.
func (f *Flash) failed(op string, off, phys int64, err error) error {
	if !f.info.Type.IsNAND() || !isIOError(err) {
		return fmt.Errorf("mtd: %s: %s at %#x: %w", f.name, op, off, err)
	}
	block := phys - phys%f.info.EraseSize
	if merr := f.dev.MarkBad(block); merr != nil {
		return fmt.Errorf("mtd: %s: %s at %#x failed (%w), marking block %#x bad failed: %w", f.name, op, off, err, block, merr)
	}
	good, serr := f.scan()
	switch {
	case serr != nil:
		f.broken = serr
	case int64(len(good)) < f.size/f.info.EraseSize:
		f.broken = fmt.Errorf("%w: %s: %d good blocks left", ErrTooFewGoodBlocks, f.name, len(good))
	default:
		f.blocks = good[:f.size/f.info.EraseSize]
	}
	return fmt.Errorf("%w: %s: %s at %#x (block %#x marked bad): %w", hw.ErrBadBlock, f.name, op, off, block, err)
}

// BadBlocks lists the physical offsets of the partition's bad blocks.
func (f *Flash) BadBlocks() ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.info.Type.IsNAND() {
		return nil, nil
	}
	var bad []int64
	for off := int64(0); off < f.info.Size; off += f.info.EraseSize {
		b, err := f.dev.IsBad(off)
		if err != nil {
			return nil, fmt.Errorf("mtd: %s: bad-block check at %#x: %w", f.name, off, err)
		}
		if b {
			bad = append(bad, off)
		}
	}
	return bad, nil
}
