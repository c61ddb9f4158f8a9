package ubootenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"meterupd/boards/hw"
)

var (
	// ErrVerify: a copy read back after writing differs from what was
	// written (a failing or worn block).
	ErrVerify = errors.New("ubootenv: read-back after write differs")
	// ErrGeometry: the copies do not fit the flash (alignment, overlap,
	// size).
	ErrGeometry = errors.New("ubootenv: environment does not fit the flash layout")
	// ErrUnsupported: a device kind this package cannot write (UBI
	// volumes; MTD devices without a flash opener).
	ErrUnsupported = errors.ErrUnsupported
)

// area is where one copy lives.
type area interface {
	// read fills p (the whole copy).
	read(p []byte) error
	// write replaces the copy with p: on flash, invalidate (NOR), erase,
	// program.
	write(p []byte) error
	// setFlag programs the flag byte in place (NOR: 1 -> 0 needs no erase).
	setFlag(b byte) error
}

// Store is the environment on its storage: one copy, or two redundant
// copies. It is safe for concurrent use within one process; with
// WithLockFile it also excludes fw_printenv/fw_setenv.
type Store struct {
	mu      sync.Mutex
	copies  []area
	size    int
	style   FlagStyle
	log     *slog.Logger
	closers []io.Closer // flashes Open opened
	lock    string      // flock file shared with fw_setenv; "" none
}

type options struct {
	root      string
	lock      string
	style     *FlagStyle
	log       *slog.Logger
	openFlash func(device string) (hw.Flash, error)
}

// Option configures Open and NewFlash.
type Option func(*options)

// WithFlagStyle forces the flag style of redundant copies. Without it the
// style follows the storage, as U-Boot's build does: ActiveObsolete on NOR
// flash (write unit 1 byte), Counter on NAND, block devices and files.
func WithFlagStyle(s FlagStyle) Option { return func(o *options) { o.style = &s } }

// WithRoot prefixes the /sys paths Open consults (tests point it at a
// temporary tree). Empty means "/".
func WithRoot(root string) Option { return func(o *options) { o.root = root } }

// DefaultLockPath is the lock file of libubootenv's fw_printenv and
// fw_setenv.
const DefaultLockPath = "/var/lock/fw_printenv.lock"

// WithLockFile makes every Load, Save and Update hold an exclusive flock
// on path (DefaultLockPath to exclude fw_setenv), so two writers cannot
// both write over the same old copy and lose one update. Without it the
// Store only serializes its own callers.
func WithLockFile(path string) Option { return func(o *options) { o.lock = path } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithFlashOpener lets Open reach MTD character devices (/dev/mtdN in
// fw_env.config) through a flash driver: open returns the whole device as
// an hw.Flash.
func WithFlashOpener(open func(device string) (hw.Flash, error)) Option {
	return func(o *options) { o.openFlash = open }
}

func buildOptions(opts []Option) options {
	o := options{}
	for _, fn := range opts {
		fn(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Open opens the environment that cfg describes. Files and block devices
// are read and written in place; /dev/mtd* devices go through the flash
// opener (WithFlashOpener); UBI volumes are not supported.
func Open(cfg Config, opts ...Option) (*Store, error) {
	o := buildOptions(opts)
	if len(cfg.Copies) == 0 || len(cfg.Copies) > 2 {
		return nil, fmt.Errorf("%w: %d copies", ErrConfig, len(cfg.Copies))
	}
	size := cfg.Copies[0].Size
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("%w: %d", ErrSize, size)
	}
	var fcs []FlashCopy
	var files []area
	var closers []io.Closer
	fail := func(err error) (*Store, error) {
		for _, c := range closers {
			c.Close()
		}
		return nil, err
	}
	for _, l := range cfg.Copies {
		if l.Size != size {
			return fail(fmt.Errorf("%w: copies of different sizes", ErrConfig))
		}
		switch {
		case strings.HasPrefix(l.Device, "/dev/ubi"):
			return fail(fmt.Errorf("ubootenv: %s: UBI volumes: %w", l.Device, ErrUnsupported))
		case strings.HasPrefix(l.Device, "/dev/mtd"):
			if o.openFlash == nil {
				return fail(fmt.Errorf("ubootenv: %s: MTD device without a flash driver: %w", l.Device, ErrUnsupported))
			}
			f, err := o.openFlash(l.Device)
			if err != nil {
				return fail(fmt.Errorf("ubootenv: open %s: %w", l.Device, err))
			}
			if c, ok := f.(io.Closer); ok {
				closers = append(closers, c)
			}
			span := l.SectorSize * max(l.Sectors, 1)
			fcs = append(fcs, FlashCopy{Flash: f, Offset: l.Offset, Span: span})
		default:
			files = append(files, &fileArea{path: l.Device, off: l.Offset, size: size, forceRO: forceROPath(o.root, l.Device)})
		}
	}
	if len(fcs) > 0 && len(files) > 0 {
		return fail(fmt.Errorf("%w: copies on both a flash and a file", ErrConfig))
	}
	if len(fcs) > 0 {
		s, err := NewFlash(size, fcs, opts...)
		if err != nil {
			return fail(err)
		}
		s.closers = closers
		return s, nil
	}
	style := Counter
	if o.style != nil {
		style = *o.style
	}
	return &Store{copies: files, size: int(size), style: style, log: o.log, lock: o.lock}, nil
}

// FlashCopy is one copy on a flash partition.
type FlashCopy struct {
	Flash hw.Flash
	// Offset of the copy: a multiple of the erase size.
	Offset int64
	// Span is the flash the copy owns and erases (whole erase blocks); 0
	// means its size rounded up to the erase size.
	Span int64
}

// NewFlash returns the environment of size bytes per copy on flash: one
// copy, or two redundant ones. The flag style is ActiveObsolete when the
// first flash programs single bytes (NOR), else Counter, unless
// WithFlagStyle says otherwise.
func NewFlash(size int64, copies []FlashCopy, opts ...Option) (*Store, error) {
	o := buildOptions(opts)
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("%w: %d", ErrSize, size)
	}
	if len(copies) == 0 || len(copies) > 2 {
		return nil, fmt.Errorf("%w: %d copies", ErrGeometry, len(copies))
	}
	s := &Store{size: int(size), log: o.log, lock: o.lock}
	var areas []*flashArea
	for i, c := range copies {
		f := c.Flash
		es, ws := f.EraseSize(), f.WriteSize()
		if es <= 0 || ws <= 0 || es%ws != 0 {
			return nil, fmt.Errorf("%w: copy %d: erase size %d, write size %d", ErrGeometry, i, es, ws)
		}
		span := c.Span
		if span == 0 {
			span = (size + es - 1) / es * es
		}
		if c.Offset < 0 || c.Offset%es != 0 || span%es != 0 || span < size || c.Offset > f.Size()-span {
			return nil, fmt.Errorf("%w: copy %d at %#x, span %#x, size %#x on a flash of %#x with %#x erase blocks",
				ErrGeometry, i, c.Offset, span, size, f.Size(), es)
		}
		a := &flashArea{f: f, off: c.Offset, size: size, span: span}
		for j, b := range areas {
			if b.f == f && a.off < b.off+b.span && b.off < a.off+a.span {
				return nil, fmt.Errorf("%w: copies %d and %d share erase blocks", ErrGeometry, j, i)
			}
		}
		areas = append(areas, a)
		s.copies = append(s.copies, a)
	}
	s.style = Counter
	if copies[0].Flash.WriteSize() == 1 {
		s.style = ActiveObsolete
	}
	if o.style != nil {
		s.style = *o.style
	}
	if s.style == ActiveObsolete {
		for i, a := range areas {
			if a.f.WriteSize() != 1 {
				return nil, fmt.Errorf("%w: copy %d: NOR flags need a 1-byte write unit", ErrGeometry, i)
			}
			a.invalidate = true
		}
	}
	return s, nil
}

// Close closes the flash devices Open opened (not those given to
// NewFlash).
func (s *Store) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Redundant reports whether the environment has two copies.
func (s *Store) Redundant() bool { return len(s.copies) == 2 }

// FlagStyle reports the flag style of the copies.
func (s *Store) FlagStyle() FlagStyle { return s.style }

// Size is the size of one copy in bytes.
func (s *Store) Size() int { return s.size }

// acquire locks the Store, and the lock file if there is one.
func (s *Store) acquire() (func(), error) {
	s.mu.Lock()
	if s.lock == "" {
		return s.mu.Unlock, nil
	}
	unlock, ok, err := lockFile(s.lock)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if !ok {
		s.log.Debug("environment lock file unavailable, going on without it", slog.String("path", s.lock))
	}
	return func() { unlock(); s.mu.Unlock() }, nil
}

// state is what reading the copies found.
type state struct {
	bufs    [][]byte
	heads   []Header
	current int // -1: none valid
	errs    []error
}

func (s *Store) readState() state {
	st := state{current: -1}
	for _, a := range s.copies {
		b := make([]byte, s.size)
		err := a.read(b)
		var h Header
		if err == nil {
			h = ReadHeader(b, s.Redundant())
		}
		st.bufs = append(st.bufs, b)
		st.heads = append(st.heads, h)
		st.errs = append(st.errs, err)
	}
	if s.Redundant() {
		st.current = Choose(s.style, st.heads[0], st.heads[1])
	} else if st.heads[0].Valid {
		st.current = 0
	}
	return st
}

// Load reads the environment as U-Boot would: the valid copy, or the
// newer of two valid ones. With no valid copy it returns ErrNoValidCopy
// (wrapping read errors, if any): the caller must not mistake U-Boot's
// default environment for what is stored.
func (s *Store) Load() (Env, error) {
	unlock, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer unlock()
	env, _, err := s.load()
	return env, err
}

func (s *Store) load() (Env, state, error) {
	st := s.readState()
	if st.current < 0 {
		return nil, st, noValidCopy(st.errs)
	}
	h := headerSize(s.Redundant())
	env, err := ParseData(st.bufs[st.current][h:], int64(h))
	if err != nil {
		return nil, st, fmt.Errorf("ubootenv: copy %d: %w", st.current, err)
	}
	return env, st, nil
}

// noValidCopy is ErrNoValidCopy, wrapping the read errors of the copies
// when there were any (a copy that reads but fails its CRC has none).
func noValidCopy(errs []error) error {
	var nonNil []error
	for _, e := range errs {
		if e != nil {
			nonNil = append(nonNil, e)
		}
	}
	if len(nonNil) == 0 {
		return ErrNoValidCopy
	}
	return fmt.Errorf("%w: %w", ErrNoValidCopy, errors.Join(nonNil...))
}

// Save stores env in one atomic write. With two copies it writes the copy
// that is not current, with the next serial (Counter) or the active flag
// (ActiveObsolete, which then marks the other copy obsolete), so a power
// cut at any point leaves the old or the new environment loadable. With
// one copy a cut can lose the environment (U-Boot then uses its default).
func (s *Store) Save(env Env) error {
	unlock, err := s.acquire()
	if err != nil {
		return err
	}
	defer unlock()
	return s.save(env, s.readState())
}

func (s *Store) save(env Env, st state) error {
	target, flag := 0, FlagActive
	if s.Redundant() && st.current >= 0 {
		target = 1 - st.current
		if s.style == Counter {
			flag = st.heads[st.current].Flag + 1
		}
	}
	img, err := Encode(env, s.size, s.Redundant(), flag)
	if err != nil {
		return err
	}
	if err := s.copies[target].write(img); err != nil {
		return fmt.Errorf("ubootenv: write copy %d: %w", target, err)
	}
	back := make([]byte, s.size)
	if err := s.copies[target].read(back); err != nil {
		return fmt.Errorf("ubootenv: read back copy %d: %w", target, err)
	}
	if !bytes.Equal(back, img) {
		return fmt.Errorf("%w: copy %d", ErrVerify, target)
	}
	if s.Redundant() && s.style == ActiveObsolete && st.current >= 0 {
		if err := s.copies[st.current].setFlag(FlagObsolete); err != nil {
			// The new copy is complete and active: U-Boot picks the first
			// of two active copies, old or new, both whole.
			return fmt.Errorf("ubootenv: mark copy %d obsolete: %w", st.current, err)
		}
	}
	s.log.Debug("environment saved", slog.Int("copy", target), slog.Int("flag", int(flag)), slog.String("style", s.style.String()))
	return nil
}

// Update reads the environment, lets fn change it, and saves it in one
// write. With no valid copy it fails with ErrNoValidCopy and writes
// nothing: writing a fresh environment would drop U-Boot's own variables
// (bootcmd) and could select an unverified slot.
func (s *Store) Update(fn func(Env) error) error {
	unlock, err := s.acquire()
	if err != nil {
		return err
	}
	defer unlock()
	env, st, err := s.load()
	if err != nil {
		return err
	}
	if err := fn(env); err != nil {
		return err
	}
	return s.save(env, st)
}

// flashArea is a copy on an hw.Flash.
type flashArea struct {
	f          hw.Flash
	off, size  int64
	span       int64
	invalidate bool // NOR: zero the old CRC before erasing
}

func (a *flashArea) read(p []byte) error {
	n, err := a.f.ReadAt(p, a.off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (a *flashArea) write(p []byte) error {
	if a.invalidate {
		// A torn erase could bring back an older copy's valid CRC with an
		// erased (0xFF) flag, which U-Boot would prefer; clearing the CRC
		// first makes every partial state invalid.
		if _, err := a.f.WriteAt(make([]byte, HeaderSize), a.off); err != nil {
			return fmt.Errorf("invalidate: %w", err)
		}
	}
	if err := a.f.Erase(a.off, a.span); err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	ws := a.f.WriteSize()
	n := (int64(len(p)) + ws - 1) / ws * ws
	buf := p
	if n != int64(len(p)) {
		buf = bytes.Repeat([]byte{0xFF}, int(n))
		copy(buf, p)
	}
	if _, err := a.f.WriteAt(buf, a.off); err != nil {
		return fmt.Errorf("program: %w", err)
	}
	return nil
}

func (a *flashArea) setFlag(b byte) error {
	_, err := a.f.WriteAt([]byte{b}, a.off+HeaderSize)
	return err
}

// fileArea is a copy in a file or block device, opened for each access as
// the C tools do.
type fileArea struct {
	path      string
	off, size int64
	forceRO   string // sysfs force_ro of an eMMC boot partition; "" none
}

// forceROPath returns the sysfs switch that keeps an eMMC boot partition
// (mmcblkNbootM) read-only, if the device is one and the switch exists.
func forceROPath(root, dev string) string {
	base := filepath.Base(dev)
	if !emmcBoot.MatchString(base) {
		return ""
	}
	if root == "" {
		root = "/"
	}
	p := filepath.Join(root, "sys", "class", "block", base, "force_ro")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

var emmcBoot = regexp.MustCompile(`^mmcblk[0-9]+boot[0-9]+$`)

// writable lifts an eMMC boot partition's write protection, as libubootenv
// does, and returns how to restore it.
func (a *fileArea) writable() (restore func(), err error) {
	if a.forceRO == "" {
		return func() {}, nil
	}
	old, err := os.ReadFile(a.forceRO)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", a.forceRO, err)
	}
	if strings.TrimSpace(string(old)) == "0" {
		return func() {}, nil
	}
	if err := os.WriteFile(a.forceRO, []byte("0"), 0); err != nil {
		return nil, fmt.Errorf("unlock %s: %w", a.forceRO, err)
	}
	return func() { os.WriteFile(a.forceRO, []byte("1"), 0) }, nil
}

func (a *fileArea) at(f *os.File) (int64, error) {
	if a.off >= 0 {
		return a.off, nil
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	if end+a.off < 0 {
		return 0, fmt.Errorf("%w: offset %d before the start of %s", ErrGeometry, a.off, a.path)
	}
	return end + a.off, nil
}

func (a *fileArea) read(p []byte) error {
	f, err := os.Open(a.path)
	if err != nil {
		return err
	}
	defer f.Close()
	off, err := a.at(f)
	if err != nil {
		return err
	}
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = fmt.Errorf("%s: short read at %#x: %w", a.path, off, io.ErrUnexpectedEOF)
	}
	return err
}

func (a *fileArea) write(p []byte) error {
	return a.writeAt(p, 0)
}

func (a *fileArea) setFlag(b byte) error {
	return a.writeAt([]byte{b}, HeaderSize)
}

func (a *fileArea) writeAt(p []byte, rel int64) error {
	restore, err := a.writable()
	if err != nil {
		return err
	}
	defer restore()
	f, err := os.OpenFile(a.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	off, err := a.at(f)
	if err == nil {
		_, err = f.WriteAt(p, off+rel)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
