//go:build !linux

package throttle

import "errors"

// LowerPriority is Linux-only; elsewhere it returns errors.ErrUnsupported.
func LowerPriority() error { return errors.ErrUnsupported }
