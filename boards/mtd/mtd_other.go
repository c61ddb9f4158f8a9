//go:build !linux

package mtd

import "errors"

// openDevice: MTD character devices exist only on Linux.
var openDevice = func(path string, readOnly bool) (Device, error) {
	return nil, errors.ErrUnsupported
}
