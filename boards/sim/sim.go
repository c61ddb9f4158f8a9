package sim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"meterupd/boards/modem"
	"os"
	"path/filepath"
	"sync"

	"meterupd/boards/flashfake"
	"meterupd/boards/hw"
)

// PartBootctl is the partition that holds the boot state (two copies, one
// per erase block). Partition returns it so tests can inspect or damage it.
const PartBootctl = "bootctl"

// Files and directories of a state directory.
const (
	stateName = "board.json"
	runDir    = "run"    // RAM: what the bootloader tells the running system
	bootedRun = "booted" // run/booted: the slot booted (the sim's /proc/cmdline)
	powerName = "power"  // the power source, "mains" or "battery"
	partExt   = ".bin"
)

// partNames lists the partition files, in the order Open opens them.
var partNames = [...]string{string(hw.SlotA), string(hw.SlotB), string(hw.SlotF), hw.PartJournal, hw.PartCommon, PartBootctl}

// Errors of the sim board.
var (
	ErrNoState      = errors.New("sim: no state directory")
	ErrCorruptState = errors.New("sim: corrupt state directory")
	ErrNewerState   = errors.New("sim: state directory written by a newer version")
	ErrNotEmpty     = errors.New("sim: state directory not empty")
	ErrPowerCut     = errors.New("sim: power cut")
	ErrIO           = errors.New("sim: i/o error")
	ErrOutOfRange   = errors.New("sim: flash operation beyond partition end")
	ErrNoPartition  = errors.New("sim: no such partition")
	ErrTooLarge     = errors.New("sim: image larger than slot")
	ErrClosed       = errors.New("sim: board closed")
)

// Board is an open sim node. Its methods are safe for concurrent use.
type Board struct {
	dir    string
	geo    Geometry
	log    *slog.Logger
	faults *Faults
	rnd    *rand.Rand

	mu        sync.Mutex // guards everything below and serialises flash operations
	parts     map[string]*flash
	ops       int64
	forbidden int64
	dead      bool
	ioFailing bool
	closed    bool
	scratch   []byte
	inv       []byte // scratch for the inverse of what an inverted part stores

	// unheld: no partition file stays open between flash operations
	// (WithoutHeldFiles).
	unheld bool

	radioMu sync.Mutex // guards radio (apart from mu: AT I/O is slow)
	radio   *modem.Radio
}

// Option configures Open.
type Option func(*Board)

// WithFaults injects faults (power cut, I/O errors, bad blocks, bit flips).
// Operation numbers count from Open.
func WithFaults(f *Faults) Option { return func(b *Board) { b.faults = f } }

// WithLogger sets the logger of the simulated bootloader; nil discards.
func WithLogger(l *slog.Logger) Option {
	return func(b *Board) {
		if l != nil {
			b.log = l
		}
	}
}

// WithoutHeldFiles keeps no partition file open between flash operations:
// each read, program or erase opens its file and closes it again. Slower,
// but a host that runs thousands of sim nodes in one process (the
// head-end's fleet simulator) stays within its open-files limit: an open
// node costs no file descriptor.
func WithoutHeldFiles() Option { return func(b *Board) { b.unheld = true } }

// OpenPowered opens the node in dir, as Open, and powers on a node that
// has never been powered on (fresh from Create): something has to run the
// agent. It is what the boards registry opens.
func OpenPowered(dir string, opts ...Option) (*Board, error) {
	b, err := Open(dir, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := b.Boot().Booted(); errors.Is(err, ErrNotBooted) {
		if _, err := b.PowerOn(); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

var _ hw.Board = (*Board)(nil)
var _ hw.Metrology = (*Board)(nil)

// Create makes a new node in dir, which must not exist or be empty:
// board.json with the geometry, every partition file erased (0xFF), and the
// boot control initialised to Order=[A], Left[A]=g.Attempts. The node is off:
// nothing has booted until PowerOn.
func Create(dir string, g Geometry) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: create: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sim: create: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEmpty, dir)
	}
	if err := os.Mkdir(filepath.Join(dir, runDir), 0o755); err != nil {
		return fmt.Errorf("sim: create: %w", err)
	}
	for _, name := range partNames {
		if err := writeErased(filepath.Join(dir, name+partExt), g.size(name), g.erasedByte()); err != nil {
			return err
		}
	}
	if err := createMetering(dir, g); err != nil {
		return err
	}
	// The factory programs the first boot control copy; the second stays erased.
	rec, err := encodeBootState(hw.BootState{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: g.Attempts}}, 1)
	if err != nil {
		return err
	}
	if err := writeFileAt(filepath.Join(dir, PartBootctl+partExt), g.physical(rec), 0); err != nil {
		return err
	}
	// board.json last: a directory without it is not a node (ErrNoState).
	return writeFileAtomic(filepath.Join(dir, stateName), encodeState(g), false)
}

// WriteFactory programs image into slots F and A as the factory does,
// straight into the files (not through the counted flash operations): the
// image at offset 0, the rest of each slot erased.
func WriteFactory(dir string, image []byte) error {
	g, err := readState(dir)
	if err != nil {
		return err
	}
	if int64(len(image)) > g.SlotSize {
		return fmt.Errorf("%w: %d bytes, slot %d", ErrTooLarge, len(image), g.SlotSize)
	}
	for _, s := range []hw.Slot{hw.SlotF, hw.SlotA} {
		p := filepath.Join(dir, string(s)+partExt)
		if err := writeErased(p, g.SlotSize, g.erasedByte()); err != nil {
			return err
		}
		if err := writeFileAt(p, g.physical(image), 0); err != nil {
			return err
		}
	}
	return nil
}

// Open opens the node in dir. It reads board.json and opens the partition
// files; it reads no partition content, so it is cheap enough to run
// thousands of times in a power-cut suite. A directory made before the
// metering partitions existed gains them, erased (see metering.go).
func Open(dir string, opts ...Option) (*Board, error) {
	g, err := readState(dir)
	if err != nil {
		return nil, err
	}
	b := &Board{dir: dir, geo: g, log: slog.New(slog.DiscardHandler), parts: make(map[string]*flash, len(partNames))}
	for _, o := range opts {
		o(b)
	}
	if b.faults != nil {
		b.rnd = b.faults.Rand
	}
	if b.rnd == nil {
		b.rnd = rand.New(rand.NewPCG(0x5eed, 0xc0ffee))
	}
	if err := createMetering(dir, g); err != nil {
		return nil, err
	}
	for _, name := range append(partNames[:], meteringParts[:]...) {
		f, err := b.openPart(name)
		if err != nil {
			b.closeFiles()
			return nil, err
		}
		b.parts[name] = f
	}
	return b, nil
}

func (b *Board) openPart(name string) (*flash, error) {
	p := filepath.Join(b.dir, name+partExt)
	mode := os.O_RDWR
	if name == string(hw.SlotF) {
		mode = os.O_RDONLY
	}
	f, err := os.OpenFile(p, mode, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: partition %s missing", ErrCorruptState, name)
		}
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	if want := b.geo.partSize(name); fi.Size() != want {
		f.Close()
		return nil, fmt.Errorf("%w: partition %s is %d bytes, want %d", ErrCorruptState, name, fi.Size(), want)
	}
	fl := &flash{b: b, name: name, f: f, path: p, mode: mode, size: fi.Size(), readOnly: name == string(hw.SlotF), inverted: b.geo.Kind() == NORErased00}
	if b.unheld {
		fl.f = nil
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("sim: open: %w", err)
		}
	}
	return fl, nil
}

func readState(dir string) (Geometry, error) {
	f, err := os.Open(filepath.Join(dir, stateName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Geometry{}, fmt.Errorf("%w: %s", ErrNoState, dir)
		}
		return Geometry{}, fmt.Errorf("sim: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return Geometry{}, fmt.Errorf("sim: %w", err)
	}
	return decodeState(data)
}

// Name returns "sim".
func (b *Board) Name() string { return "sim" }

// Geometry returns the node's flash layout.
func (b *Board) Geometry() Geometry { return b.geo }

// Dir returns the state directory.
func (b *Board) Dir() string { return b.dir }

// Partition returns hw.PartJournal, hw.PartCommon, PartBootctl,
// hw.PartAudit or hw.PartOpLog.
func (b *Board) Partition(name string) (hw.Flash, error) {
	switch name {
	case hw.PartJournal, hw.PartCommon, PartBootctl, hw.PartAudit, hw.PartOpLog:
		return b.parts[name], nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoPartition, name)
}

// Slot returns a slot's flash. F is read-only: WriteAt and Erase fail with
// hw.ErrReadOnly, and ForbiddenWrites counts the attempts.
func (b *Board) Slot(s hw.Slot) (hw.Flash, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("%w: slot %q", ErrNoPartition, s)
	}
	return b.parts[string(s)], nil
}

// Ops returns the flash operations since Open: each Erase call and each
// WriteAt call that reached the flash, on every partition (the bootloader's
// boot control writes included). Calls rejected before reaching the flash
// (misaligned, out of range, on read-only F, after the power cut) are not
// operations.
func (b *Board) Ops() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ops
}

// Programs returns, for partition part ("A", "B", "journal"…), how many
// times each unit of the partition was programmed since Open (torn
// programs included), and the unit's size in bytes: the write size, at
// least 256. Nil when nothing was programmed. The power-cut suite uses it
// to measure what a resume writes again.
func (b *Board) Programs(part string) ([]uint32, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.parts[part]
	if f == nil {
		return nil, 0
	}
	return append([]uint32(nil), f.progs...), f.trackUnit()
}

// ForbiddenWrites returns the WriteAt and Erase calls on F since Open.
func (b *Board) ForbiddenWrites() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.forbidden
}

// Dead reports whether the power has been cut.
func (b *Board) Dead() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dead
}

// Close closes the partition files. Operations after Close fail with ErrClosed.
func (b *Board) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.closeFiles()
}

func (b *Board) closeFiles() error {
	var errs []error
	for _, p := range b.parts {
		if p.f == nil {
			continue // not held (WithoutHeldFiles)
		}
		if err := p.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// physical returns data as a part of g's kind stores it: inverted on a
// part erased to 0x00 (a copy), else data itself.
func (g Geometry) physical(data []byte) []byte {
	if g.Kind() != NORErased00 {
		return data
	}
	q := make([]byte, len(data))
	flashfake.Invert(q, data)
	return q
}

// writeErased creates or overwrites the file at p with n bytes of the
// erased value e.
func writeErased(p string, n int64, e byte) error {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	chunk := erasedChunk
	if e != 0xFF {
		chunk = make([]byte, len(erasedChunk))
		for i := range chunk {
			chunk[i] = e
		}
	}
	for off := int64(0); off < n; off += int64(len(chunk)) {
		c := chunk[:min(int64(len(chunk)), n-off)]
		if _, err := f.WriteAt(c, off); err != nil {
			f.Close()
			return fmt.Errorf("sim: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

func writeFileAt(p string, data []byte, off int64) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		f.Close()
		return fmt.Errorf("sim: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// writeFileAtomic replaces p: temp file, rename. With durable it also syncs
// the file and the directory; the run directory (RAM on a real node) and the
// power file skip that, as they are rewritten at every simulated boot.
func writeFileAtomic(p string, data []byte, durable bool) error {
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sim: %w", err)
	}
	if !durable {
		return nil
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		d.Sync() // best effort: some file systems refuse to sync a directory
		d.Close()
	}
	return nil
}
