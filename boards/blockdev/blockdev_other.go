//go:build !linux

package blockdev

import "errors"

// openFile: the block device driver is Linux-only.
var openFile = func(path string, readOnly bool) (File, int64, error) {
	return nil, 0, errors.ErrUnsupported
}
