package qemutest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Mode bits of a cpio entry (the st_mode file types).
const (
	ModeDir  = 0o040000
	ModeFile = 0o100000
	ModeChar = 0o020000
)

// ErrCPIOName: an entry name the format cannot carry.
var ErrCPIOName = errors.New("qemutest: invalid cpio entry name")

// Writer writes a newc ("070701") cpio archive.
type Writer struct {
	w     io.Writer
	ino   uint32
	off   int64
	err   error
	close bool
}

// NewWriter returns a Writer on w. Close writes the trailer.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 1} }

// Dir adds a directory.
func (c *Writer) Dir(name string, perm fs.FileMode) error {
	return c.entry(name, ModeDir|uint32(perm.Perm()), 0, 0, nil)
}

// File adds a regular file.
func (c *Writer) File(name string, perm fs.FileMode, data []byte) error {
	return c.entry(name, ModeFile|uint32(perm.Perm()), 0, 0, data)
}

// CharDev adds a character device node (e.g. /dev/console, 5:1).
func (c *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return c.entry(name, ModeChar|uint32(perm.Perm()), major, minor, nil)
}

// Close writes the trailer. It does not close the underlying writer.
func (c *Writer) Close() error {
	if c.close {
		return c.err
	}
	c.close = true
	return c.entry("TRAILER!!!", 0, 0, 0, nil)
}

func (c *Writer) entry(name string, mode, rmajor, rminor uint32, data []byte) error {
	if c.err != nil {
		return c.err
	}
	if name == "" || len(name) > 4096 {
		return fmt.Errorf("%w: %q", ErrCPIOName, name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return fmt.Errorf("%w: %q", ErrCPIOName, name)
		}
	}
	nlink := uint32(1)
	if mode&0o170000 == ModeDir {
		nlink = 2
	}
	ino := c.ino
	c.ino++
	if name == "TRAILER!!!" {
		ino, nlink = 0, 1
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
	return c.err
}

func (c *Writer) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.off += int64(n)
	if err != nil {
		c.err = fmt.Errorf("qemutest: write cpio: %w", err)
	}
}

func (c *Writer) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
