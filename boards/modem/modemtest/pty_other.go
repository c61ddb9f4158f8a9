//go:build !linux

package modemtest

import (
	"errors"
	"os"
)

func openPTY() (*os.File, string, int, error) {
	return nil, "", -1, errors.ErrUnsupported
}

func closeFD(int) {}
