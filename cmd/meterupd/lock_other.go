//go:build !unix

package main

import "errors"

func lockFile(string) (func(), error) { return nil, errors.ErrUnsupported }
