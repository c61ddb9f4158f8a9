package blockdev

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"meterupd/boards/hw"
)

// DefaultEraseSize is the erase unit when the board file gives none.
const DefaultEraseSize = 512 << 10

var (
	// ErrNotFound: no block device partition of that name.
	ErrNotFound = errors.New("blockdev: partition not found")
	// ErrGeometry: sizes the driver cannot use.
	ErrGeometry = errors.New("blockdev: unusable geometry")
	// ErrRange: an operation reaches past the partition.
	ErrRange = errors.New("blockdev: range outside partition")
	// ErrUevent: a sysfs uevent file does not parse.
	ErrUevent = errors.New("blockdev: malformed uevent")
)

// File is what the driver needs of an opened block device.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
}

type options struct {
	eraseSize  int64
	sectorSize int64
	readOnly   bool
	open       func(path string, readOnly bool) (File, int64, error)
}

// Option configures Open and New.
type Option func(*options)

// WithEraseSize sets the erase unit (a multiple of the sector size).
func WithEraseSize(n int64) Option { return func(o *options) { o.eraseSize = n } }

// WithSectorSize sets the write unit when the device does not report one.
func WithSectorSize(n int64) Option { return func(o *options) { o.sectorSize = n } }

// WithReadOnly makes WriteAt and Erase fail with hw.ErrReadOnly.
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithOpener replaces how Open opens the device node: it returns the file
// and the device's logical sector size (0: unknown).
func WithOpener(open func(path string, readOnly bool) (File, int64, error)) Option {
	return func(o *options) { o.open = open }
}

// Open opens the partition whose GPT name is name: root/sys/class/block/*/
// uevent is searched for PARTNAME=name and root/dev/DEVNAME opened.
func Open(root, name string, opts ...Option) (*Flash, error) {
	o := options{open: openFile}
	for _, fn := range opts {
		fn(&o)
	}
	if root == "" {
		root = "/"
	}
	dev, err := FindPartition(root, name)
	if err != nil {
		return nil, err
	}
	f, sector, err := o.open(filepath.Join(root, "dev", dev), o.readOnly)
	if err != nil {
		return nil, fmt.Errorf("blockdev: open %q: %w", name, err)
	}
	if o.sectorSize == 0 {
		o.sectorSize = sector
	}
	fl, err := newFlash(f, name, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	return fl, nil
}

// New wraps an opened file (a block device, or a regular file in tests).
func New(f File, name string, opts ...Option) (*Flash, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	return newFlash(f, name, o)
}

// FindPartition returns the device name (e.g. mmcblk0p3) of the partition
// called name, from root/sys/class/block/*/uevent.
func FindPartition(root, name string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(root, "sys", "class", "block", "*", "uevent"))
	if err != nil {
		return "", fmt.Errorf("blockdev: %w", err)
	}
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			continue // a device that went away
		}
		ev, err := ParseUevent(data)
		if err != nil {
			return "", fmt.Errorf("%s: %w", m, err)
		}
		if ev["PARTNAME"] == name && ev["DEVNAME"] != "" {
			return ev["DEVNAME"], nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrNotFound, name)
}

// maxUevent caps a uevent file: the kernel's buffer is 2 KiB.
const maxUevent = 4096

// ParseUevent parses KEY=value lines of a sysfs uevent file.
func ParseUevent(data []byte) (map[string]string, error) {
	if len(data) > maxUevent {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrUevent, len(data), maxUevent)
	}
	ev := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		if sc.Text() == "" {
			continue
		}
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%w: line %d: want KEY=value", ErrUevent, line)
		}
		ev[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUevent, err)
	}
	if d := ev["DEVNAME"]; strings.Contains(d, "..") || strings.HasPrefix(d, "/") {
		return nil, fmt.Errorf("%w: DEVNAME %q leaves /dev", ErrUevent, d)
	}
	return ev, nil
}

// Flash is one block device partition as an hw.Flash.
type Flash struct {
	mu        sync.Mutex
	f         File
	name      string
	size      int64
	eraseSize int64
	sector    int64
	readOnly  bool
}

var _ hw.Flash = (*Flash)(nil)

func newFlash(f File, name string, o options) (*Flash, error) {
	if o.eraseSize == 0 {
		o.eraseSize = DefaultEraseSize
	}
	if o.sectorSize == 0 {
		o.sectorSize = 512
	}
	if o.sectorSize <= 0 || o.eraseSize <= 0 || o.eraseSize%o.sectorSize != 0 {
		return nil, fmt.Errorf("%w: %s: erase %d, sector %d", ErrGeometry, name, o.eraseSize, o.sectorSize)
	}
	size, err := deviceSize(f)
	if err != nil {
		return nil, fmt.Errorf("blockdev: %s: size: %w", name, err)
	}
	size -= size % o.eraseSize
	if size <= 0 {
		return nil, fmt.Errorf("%w: %s: smaller than one erase unit (%d)", ErrGeometry, name, o.eraseSize)
	}
	return &Flash{f: f, name: name, size: size, eraseSize: o.eraseSize, sector: o.sectorSize, readOnly: o.readOnly}, nil
}

// deviceSize: Seek to the end works on Linux block devices and on files.
func deviceSize(f File) (int64, error) {
	if s, ok := f.(io.Seeker); ok {
		return s.Seek(0, io.SeekEnd)
	}
	if st, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok {
		fi, err := st.Stat()
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	return 0, errors.ErrUnsupported
}

func (f *Flash) Size() int64      { return f.size }
func (f *Flash) EraseSize() int64 { return f.eraseSize }
func (f *Flash) WriteSize() int64 { return f.sector }
func (f *Flash) Close() error     { return f.f.Close() }

// ReadAt follows io.ReaderAt within the partition's Size.
func (f *Flash) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrRange, off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > f.size-off {
		p = p[:f.size-off]
	}
	n, err := f.f.ReadAt(p, off)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
		return n, fmt.Errorf("blockdev: %s: read at %#x: %w", f.name, off, err)
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt programs whole sectors that may only clear bits (see the package
// doc); a refused write changes nothing.
func (f *Flash) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(off, int64(len(p)), f.sector); err != nil {
		return 0, err
	}
	const chunk = 64 << 10
	buf := make([]byte, min(len(p), chunk))
	for n := 0; n < len(p); n += chunk {
		l := min(chunk, len(p)-n)
		old := buf[:l]
		if _, err := f.f.ReadAt(old, off+int64(n)); err != nil {
			return 0, fmt.Errorf("blockdev: %s: read before write at %#x: %w", f.name, off+int64(n), err)
		}
		for i := range old {
			if p[n+i]&^old[i] != 0 {
				return 0, fmt.Errorf("%w: %s: at %#x", hw.ErrNotErased, f.name, off+int64(n+i))
			}
		}
	}
	m, err := f.f.WriteAt(p, off)
	if err != nil {
		return m, fmt.Errorf("blockdev: %s: write at %#x: %w", f.name, off, err)
	}
	return m, nil
}

// Erase writes 0xFF over whole erase units.
func (f *Flash) Erase(off, n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(off, n, f.eraseSize); err != nil {
		return err
	}
	ff := bytes.Repeat([]byte{0xFF}, int(min(n, 64<<10)))
	for cur := off; cur < off+n; cur += int64(len(ff)) {
		l := min(int64(len(ff)), off+n-cur)
		if _, err := f.f.WriteAt(ff[:l], cur); err != nil {
			return fmt.Errorf("blockdev: %s: erase at %#x: %w", f.name, cur, err)
		}
	}
	return nil
}

func (f *Flash) check(off, n, unit int64) error {
	if f.readOnly {
		return fmt.Errorf("%w: %s", hw.ErrReadOnly, f.name)
	}
	if off%unit != 0 || n%unit != 0 {
		return fmt.Errorf("%w: %s: offset %#x length %#x, unit %#x", hw.ErrAlignment, f.name, off, n, unit)
	}
	if off < 0 || n < 0 || off > math.MaxInt64-n || off+n > f.size {
		return fmt.Errorf("%w: %s: offset %#x length %#x, size %#x", ErrRange, f.name, off, n, f.size)
	}
	return nil
}
