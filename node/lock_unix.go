//go:build unix

package node

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked: another process owns the node.
var ErrLocked = errors.New("node: another meterupd is working on this node")

// lockFile takes an exclusive lock on path: one process at a time owns the
// node's flash. It fails at once, with a sentence, when another holds it.
// The kernel drops the lock when the process dies, so a crash leaves none.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (lock %s is held); wait for it or stop it", ErrLocked, path)
	}
	return func() { f.Close() }, nil
}
