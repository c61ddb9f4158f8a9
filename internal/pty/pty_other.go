//go:build !linux

package pty

import (
	"errors"
	"os"
)

// Open is not supported outside Linux.
func Open() (*os.File, string, int, error) {
	return nil, "", -1, errors.ErrUnsupported
}

// CloseFD does nothing outside Linux.
func CloseFD(int) {}
