package qemutest

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// ErrModule: a module or one of its dependencies is missing or unreadable.
var ErrModule = errors.New("qemutest: kernel module")

// Module is one kernel module file and the parameters to load it with.
type Module struct {
	Name string // e.g. nandsim
	Path string // .ko file
}

// ModuleOrder returns name and every module it depends on, dependencies
// first, read from the depends= field of each .ko's .modinfo section.
func ModuleOrder(modDir, name string) ([]Module, error) {
	paths := map[string]string{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			paths[canon(strings.TrimSuffix(d.Name(), ".ko"))] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}
	var order []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string) error
	visit = func(n string) error {
		n = canon(n)
		switch state[n] {
		case 1:
			return fmt.Errorf("%w: dependency cycle at %s", ErrModule, n)
		case 2:
			return nil
		}
		p, ok := paths[n]
		if !ok {
			return fmt.Errorf("%w: %s not in %s", ErrModule, n, modDir)
		}
		state[n] = 1
		deps, err := readDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, Module{Name: n, Path: p})
		return nil
	}
	if err := visit(name); err != nil {
		return nil, err
	}
	return order, nil
}

// canon makes module names comparable: the kernel treats - and _ alike.
func canon(n string) string { return strings.ReplaceAll(n, "-", "_") }

// readDepends is a seam for tests of the ordering.
var readDepends = moduleDepends

func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%w: %s has no .modinfo", ErrModule, path)
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrModule, path, err)
	}
	return ParseModinfo(data), nil
}

// ParseModinfo returns the depends= list of a .modinfo section: NUL-separated
// key=value strings.
func ParseModinfo(data []byte) []string {
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil
			}
			return strings.Split(string(v), ",")
		}
	}
	return nil
}
