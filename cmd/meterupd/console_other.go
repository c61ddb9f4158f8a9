//go:build !linux

package main

import "errors"

func storeFree(string) (int64, error) { return 0, errors.New("console uploads need Linux") }

func rawTerminal(int) (func(), error) { return nil, errors.New("not a Linux terminal") }
