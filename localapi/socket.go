package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// maxSunPath is the room for a path in a Unix socket address (sun_path:
// 108 bytes on Linux, with its terminating NUL).
const maxSunPath = 107

// ErrNoDaemon: no daemon listens on the socket (no socket file, or one left
// behind by a daemon that is gone).
var ErrNoDaemon = errors.New("localapi: no daemon is running")

// ErrPathTooLong: the socket path does not fit a Unix socket address.
var ErrPathTooLong = errors.New("localapi: socket path too long")

// address returns what to bind or connect to for path. A path longer than
// a socket address holds is reached through its directory's descriptor
// (/proc/self/fd/N/name on Linux); release closes that descriptor.
func address(path string) (addr string, release func(), err error) {
	if len(path) <= maxSunPath {
		return path, func() {}, nil
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s is %d bytes (a socket address holds %d): %w", ErrPathTooLong, path, len(path), maxSunPath, err)
	}
	addr = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(path))
	if _, err := os.Stat(filepath.Dir(addr)); err != nil || len(addr) > maxSunPath {
		d.Close()
		return "", nil, fmt.Errorf("%w: %s is %d bytes, a socket address holds %d; give a shorter one with --socket", ErrPathTooLong, path, len(path), maxSunPath)
	}
	return addr, func() { d.Close() }, nil
}

// Listen creates the socket at path, readable and writable by its owner
// only, or also by group gid when gid >= 0. A file already at path is an
// error unless removeStale: the caller removes a socket left by a crashed
// daemon only once it holds the node's lock (then no daemon can be using
// it).
func Listen(path string, gid int, removeStale bool) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if removeStale {
		if fi, err := os.Lstat(path); err == nil {
			if fi.Mode().Type() != fs.ModeSocket {
				return nil, fmt.Errorf("localapi: %s exists and is not a socket; not removing it", path)
			}
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("localapi: remove stale socket: %w", err)
			}
		}
	}
	addr, release, err := address(path)
	if err != nil {
		return nil, err
	}
	defer release()
	// The socket is created with the mode the umask leaves; it is
	// chmodded right after, and its directory on a meter (/run/meterupd)
	// is root's alone, so nobody reaches it in between.
	// ListenUnix and DialUnix, not Listen and Dial: those link the name
	// resolver into the meter binary.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("localapi: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	mode := os.FileMode(0o600)
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("localapi: socket group: %w", err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: socket mode: %w", err)
	}
	return &unlinker{Listener: ln, path: path}, nil
}

// unlinker removes the socket file on Close even when it was bound through
// /proc/self/fd (where net's own unlink would not find it).
type unlinker struct {
	net.Listener
	path string
}

func (u *unlinker) Close() error {
	err := u.Listener.Close()
	if rerr := os.Remove(u.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// dial connects to the socket at path.
func dial(path string) (net.Conn, error) {
	addr, release, err := address(path)
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w (%s): %w", ErrNoDaemon, path, err)
		}
		return nil, fmt.Errorf("localapi: connect %s: %w", path, err)
	}
	return c, nil
}
