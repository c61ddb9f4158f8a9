// Package fileitem installs the file items of a package (configuration
// files, metrology parameters, certificates) into the directory a board
// declares for them, so that after a power cut at any point each file holds
// either its old content or the whole new one, and the old content can be
// put back on rollback.
//
// An update of one file item is three steps, each safe to repeat after a
// crash:
//
//	Install  keep the current content in the archive (unless an archive of
//	         this update is already there: a crash after the new content
//	         was written must not archive the new content as the old),
//	         then write the new content atomically (internal/atomicfile)
//	Commit   the update is good: drop the archive
//	Restore  roll back: put the archived content back (or remove a file
//	         that did not exist before), then drop the archive
//
// The archive lives in the place's ".archive" directory: one file per item,
// a byte 'P' and the old content, or a byte 'A' when the item was absent,
// written atomically, so a half-written archive does not exist.
//
// Names are single path elements of letters, digits, '.', '_', '-' and
// '+', not starting with '.', at most 128 bytes: no "..", no separators, so
// an item never leaves its place and never collides with the archive or
// the temporary files of an atomic write (which start with '.').
package fileitem

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"meterupd/internal/atomicfile"
)

var (
	// ErrName rejects a name that is not a plain file name.
	ErrName = errors.New("fileitem: invalid file item name")
	// ErrTooLarge rejects an item larger than its place allows.
	ErrTooLarge = errors.New("fileitem: file item too large")
	// ErrSize: the content is not as long as declared.
	ErrSize = errors.New("fileitem: file item size differs from its declaration")
	// ErrCorruptArchive: an archive file without its leading marker.
	ErrCorruptArchive = errors.New("fileitem: corrupt archive")
)

// DefaultMaxSize bounds an item when the place does not say (1 MiB: the
// largest certificate chains and parameter sets are far smaller).
const DefaultMaxSize = 1 << 20

// MaxName bounds a name's length.
const MaxName = 128

const archiveDir = ".archive"

// Place is a directory a board declares for file items.
type Place struct {
	// Dir is the directory; it must exist.
	Dir string
	// MaxSize bounds each item (default DefaultMaxSize).
	MaxSize int64
	// Mode is the items' file mode (default 0644).
	Mode os.FileMode

	// crash, in tests, is called between steps; an error stops there as
	// a power cut would.
	crash func(step string) error
}

func (p Place) maxSize() int64 {
	if p.MaxSize <= 0 {
		return DefaultMaxSize
	}
	return p.MaxSize
}

func (p Place) mode() os.FileMode {
	if p.Mode == 0 {
		return 0o644
	}
	return p.Mode
}

func (p Place) step(name string) error {
	if p.crash != nil {
		return p.crash(name)
	}
	return nil
}

// ValidName reports whether name is a plain file item name (see the
// package documentation); the error wraps ErrName.
func ValidName(name string) error {
	if name == "" || len(name) > MaxName || name[0] == '.' {
		return fmt.Errorf("%w: %q", ErrName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+') {
			return fmt.Errorf("%w: %q: byte %d", ErrName, name, i)
		}
	}
	return nil
}

func (p Place) path(name string) string    { return filepath.Join(p.Dir, name) }
func (p Place) archive(name string) string { return filepath.Join(p.Dir, archiveDir, name) }

// Install archives the item's current content (unless already archived)
// and writes size bytes from r as its new content. Bad input (a name, a
// size over the place's bound, content of another length) changes nothing.
func (p Place) Install(name string, r io.Reader, size int64) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if size < 0 || size > p.maxSize() {
		return fmt.Errorf("%w: %s: %d bytes, the place allows %d", ErrTooLarge, name, size, p.maxSize())
	}
	p.sweep(name)
	made, err := p.archiveOnce(name)
	if err != nil {
		return err
	}
	if err := p.step("archived"); err != nil {
		return err
	}
	err = atomicfile.Write(p.path(name), p.mode(), func(w io.Writer) error {
		n, err := io.Copy(w, io.LimitReader(r, size+1))
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("%w: %s: %d bytes, declared %d", ErrSize, name, n, size)
		}
		return nil
	})
	if err != nil {
		if made {
			// Nothing changed but the archive made by this call.
			err = errors.Join(err, p.drop(name))
		}
		return fmt.Errorf("fileitem: install %s: %w", name, err)
	}
	return nil
}

// archiveOnce writes the archive of name unless one exists; it reports
// whether it wrote one.
func (p Place) archiveOnce(name string) (bool, error) {
	if _, err := os.Lstat(p.archive(name)); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Mkdir(filepath.Join(p.Dir, archiveDir), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return false, err
	}
	cur, err := os.Open(p.path(name))
	absent := errors.Is(err, fs.ErrNotExist)
	if err != nil && !absent {
		return false, err
	}
	if cur != nil {
		defer cur.Close()
	}
	err = atomicfile.Write(p.archive(name), 0o600, func(w io.Writer) error {
		if absent {
			_, err := w.Write([]byte{'A'})
			return err
		}
		if _, err := w.Write([]byte{'P'}); err != nil {
			return err
		}
		_, err := io.Copy(w, cur)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("fileitem: archive %s: %w", name, err)
	}
	return true, nil
}

// Commit drops the archive of name: the update stays. Committing an item
// without an archive is not an error (a repeat after a crash).
func (p Place) Commit(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	return p.drop(name)
}

// Restore puts the archived content of name back (removes the item when it
// did not exist before) and drops the archive. Without an archive it does
// nothing: the item was never changed, or the restore already happened.
func (p Place) Restore(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	p.sweep(name)
	a, err := os.Open(p.archive(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer a.Close()
	br := bufio.NewReader(a)
	kind, err := br.ReadByte()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorruptArchive, name, err)
	}
	switch kind {
	case 'A':
		if err := os.Remove(p.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := atomicfile.SyncDir(p.Dir); err != nil {
			return err
		}
	case 'P':
		err := atomicfile.Write(p.path(name), p.mode(), func(w io.Writer) error {
			_, err := io.Copy(w, br)
			return err
		})
		if err != nil {
			return fmt.Errorf("fileitem: restore %s: %w", name, err)
		}
	default:
		return fmt.Errorf("%w: %s: marker %q", ErrCorruptArchive, name, kind)
	}
	if err := p.step("restored"); err != nil {
		return err
	}
	return p.drop(name)
}

// Archived reports whether name has an archive: an update of it is not
// committed or rolled back yet.
func (p Place) Archived(name string) (bool, error) {
	if err := ValidName(name); err != nil {
		return false, err
	}
	_, err := os.Lstat(p.archive(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (p Place) drop(name string) error {
	err := os.Remove(p.archive(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Join(p.Dir, archiveDir))
}

// sweep removes what an atomic write cut by a power loss left of name: its
// temporary files, next to the item and in the archive.
func (p Place) sweep(name string) {
	for _, dir := range []string{p.Dir, filepath.Join(p.Dir, archiveDir)} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		prefix := "." + name + ".tmp"
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}
