package watchdog

import "golang.org/x/sys/unix"

const supported = true

// platformOps are the Linux watchdog ioctls.
type platformOps struct{}

func (platformOps) keepalive(fd uintptr) error {
	return unix.IoctlSetPointerInt(int(fd), unix.WDIOC_KEEPALIVE, 0)
}

func (platformOps) setTimeout(fd uintptr, secs int) error {
	return unix.IoctlSetPointerInt(int(fd), unix.WDIOC_SETTIMEOUT, secs)
}

func (platformOps) getTimeout(fd uintptr) (int, error) {
	return unix.IoctlGetInt(int(fd), unix.WDIOC_GETTIMEOUT)
}
