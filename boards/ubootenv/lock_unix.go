//go:build unix

package ubootenv

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path, as libubootenv does around
// fw_printenv and fw_setenv. It returns ok=false, no error, when the lock
// file cannot be opened (no /var/lock): libubootenv then proceeds without
// the lock too.
func lockFile(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o666)
	if err != nil {
		return func() {}, false, nil
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("ubootenv: lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true, nil
}
