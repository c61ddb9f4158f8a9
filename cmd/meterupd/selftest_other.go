//go:build !linux

package main

import (
	"context"
	"errors"
)

// guestInit: the test VM's init exists only on Linux.
func guestInit(context.Context, *cmdEnv, func() error) error { return errors.ErrUnsupported }
