//go:build !linux

package am335x

import "errors"

var reboot = func() error { return errors.ErrUnsupported }
