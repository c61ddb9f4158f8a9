// Package atomicfile writes a file so that, after a crash or a power cut at
// any point, the path holds either its old content or the whole new one:
// write a temporary file in the same directory, fsync it, close it (and
// check that), rename it over the path, then fsync the directory so the
// rename itself survives (tailscale's atomicfile stops before that last
// step; a meter that loses power cannot).
package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

// Write writes path with mode through write. On any error the path is
// untouched and the temporary file is removed.
func Write(path string, mode os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a rename or a removal in dir durable. File systems that
// cannot sync a directory (EINVAL) have nothing more to do.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, os.ErrInvalid) {
		err = nil
	}
	return errors.Join(err, d.Close())
}
