// Package boards is the registry of board files. A board file composes
// drivers (flash, boot control, modem, power) for one product and registers
// itself in init with MustRegister, as periph's driverreg does; the command
// blank-imports the boards of its architecture.
//
// A board is chosen by name (--board) or by probing: Probe separates "not
// this board" (false, nil) from "this board, but broken" (an error).
package boards

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"meterupd/boards/hw"
)

// Config is what opening a board may need from the command line.
type Config struct {
	// StateDir is the sim board's state directory.
	StateDir string
	// Root prefixes every absolute path a driver reads (/proc, /sys, /dev),
	// so tests can point a hardware board at a fake tree. Empty means "/".
	Root   string
	Logger *slog.Logger
}

// Entry is one registered board file.
type Entry struct {
	Name string
	// Compatible lists device-tree "compatible" strings this board serves
	// (matched against /proc/device-tree/compatible).
	Compatible []string
	// Probe reports whether this is the board we run on. Optional.
	Probe func(cfg Config) (bool, error)
	// Open opens the board.
	Open func(cfg Config) (hw.Board, error)
}

var (
	mu       sync.Mutex
	registry = map[string]Entry{}
)

// ErrUnknownBoard is returned by Open for a name nobody registered.
var ErrUnknownBoard = errors.New("boards: unknown board")

// Register adds a board file. A duplicate name is an error.
func Register(e Entry) error {
	mu.Lock()
	defer mu.Unlock()
	if e.Name == "" || e.Open == nil {
		return fmt.Errorf("boards: register %q: name and Open are required", e.Name)
	}
	if _, dup := registry[e.Name]; dup {
		return fmt.Errorf("boards: board %q registered twice", e.Name)
	}
	registry[e.Name] = e
	return nil
}

// MustRegister is Register for init functions: it panics on a programming
// error (a duplicate or incomplete entry), never on input.
func MustRegister(e Entry) {
	if err := Register(e); err != nil {
		panic(err)
	}
}

// Names lists the registered boards, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	n := make([]string, 0, len(registry))
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Lookup returns a registered board file.
func Lookup(name string) (Entry, bool) {
	mu.Lock()
	defer mu.Unlock()
	e, ok := registry[name]
	return e, ok
}

// Open opens the board called name.
func Open(name string, cfg Config) (hw.Board, error) {
	e, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownBoard, name, Names())
	}
	return e.Open(cfg)
}
