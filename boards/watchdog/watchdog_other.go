//go:build !linux

package watchdog

import "meterupd/boards/hw"

const supported = false

// platformOps fail: only Linux has the watchdog API.
type platformOps struct{}

func (platformOps) keepalive(uintptr) error         { return hw.ErrUnsupported }
func (platformOps) setTimeout(uintptr, int) error   { return hw.ErrUnsupported }
func (platformOps) getTimeout(uintptr) (int, error) { return 0, hw.ErrUnsupported }
