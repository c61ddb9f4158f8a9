//go:build !linux

package main

import (
	"context"
	"errors"
	"time"
)

// guestInit: the test VM's init exists only on Linux.
func guestInit(context.Context, *cmdEnv, func() error) error { return errors.ErrUnsupported }

// idleRSS reads /proc: Linux only.
func idleRSS(context.Context, time.Duration) (string, error) { return "", errors.ErrUnsupported }
