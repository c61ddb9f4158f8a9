package boards

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrNoBoard: no registered board file matches this hardware.
	ErrNoBoard = errors.New("boards: no board file matches this hardware")
	// ErrCompatible: the device tree's compatible property is malformed.
	ErrCompatible = errors.New("boards: malformed device-tree compatible")
)

// maxCompatible caps the compatible property read (real ones are < 200 B).
const maxCompatible = 4096

// Detect chooses the board file for the hardware it runs on: first by the
// device tree's compatible strings (root/proc/device-tree/compatible, most
// specific first, matched against each Entry's Compatible), then by asking
// the boards that have a Probe, in name order. A Probe error is returned:
// it is this board, but broken.
func Detect(cfg Config) (string, error) {
	root := cfg.Root
	if root == "" {
		root = "/"
	}
	compat, err := readCompatible(filepath.Join(root, "proc", "device-tree", "compatible"))
	if err != nil {
		return "", err
	}
	names := Names()
	for _, c := range compat {
		for _, n := range names {
			e, _ := Lookup(n)
			for _, ec := range e.Compatible {
				if ec == c {
					return n, nil
				}
			}
		}
	}
	for _, n := range names {
		e, _ := Lookup(n)
		if e.Probe == nil {
			continue
		}
		ok, err := e.Probe(cfg)
		if err != nil {
			return "", fmt.Errorf("boards: probe %s: %w", n, err)
		}
		if ok {
			return n, nil
		}
	}
	if len(compat) == 0 {
		return "", fmt.Errorf("%w (no device tree; known: %v)", ErrNoBoard, names)
	}
	return "", fmt.Errorf("%w: compatible %q (known: %v)", ErrNoBoard, compat, names)
}

// readCompatible reads the compatible property; a missing device tree (a
// PC, a VM without one) is no strings, not an error.
func readCompatible(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCompatible+1))
	if err != nil {
		return nil, fmt.Errorf("boards: read %s: %w", path, err)
	}
	return ParseCompatible(data)
}

// ParseCompatible splits a device-tree compatible property: NUL-terminated
// strings, most specific first ("ti,am335x-bone-black\x00ti,am33xx\x00").
func ParseCompatible(data []byte) ([]string, error) {
	if len(data) > maxCompatible {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrCompatible, maxCompatible)
	}
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != 0 {
		return nil, fmt.Errorf("%w: not NUL-terminated", ErrCompatible)
	}
	var out []string
	off := 0
	for _, s := range bytes.Split(data[:len(data)-1], []byte{0}) {
		if len(s) == 0 {
			return nil, fmt.Errorf("%w: empty string at offset %d", ErrCompatible, off)
		}
		for i, c := range s {
			if c < 0x20 || c > 0x7e {
				return nil, fmt.Errorf("%w: byte %#x at offset %d", ErrCompatible, c, off+i)
			}
		}
		out = append(out, string(s))
		off += len(s) + 1
	}
	return out, nil
}

// FormatCompatible is the inverse of ParseCompatible.
func FormatCompatible(c []string) []byte {
	if len(c) == 0 {
		return nil
	}
	return []byte(strings.Join(c, "\x00") + "\x00")
}
