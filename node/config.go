package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"meterupd/clock"
	"os"
	"path/filepath"

	"meterupd/agent"
	"meterupd/boards"
	"meterupd/boards/hw"
	"meterupd/manifest"
)

// Config says where the node is and how to reach it.
type Config struct {
	// Board is the board file: "sim", a hardware board, or "" / "auto"
	// (from the device tree; sim when StateDir is set).
	Board string
	// StateDir is the sim board's state directory.
	StateDir string
	// Store overrides the package store directory.
	Store string
	// Socket overrides the local API socket's path.
	Socket string
	// SocketGroup, when set, names the group given access to the socket
	// (the metrology process's); otherwise it is its owner's (root's)
	// alone.
	SocketGroup string
	Logger      *slog.Logger
	// Clock is the agent's clock (nil: the system clock).
	Clock clock.Clock

	// Embedded runs the daemon inside a host program that owns the state
	// directory and is its only client (the head-end's fleet simulator,
	// thousands of nodes in one process): Run serves no local API socket
	// and takes no lock file; clients call Daemon.Handle in the process.
	// The default (false) is a meter's daemon.
	Embedded bool
	// OpenBoard, when set, opens the board instead of the boards registry
	// (the fleet simulator opens its sim boards with options of its own,
	// e.g. no partition file held open between flash operations).
	OpenBoard func() (hw.Board, error)

	// vetoes are the processes asked before an activation (the daemon's
	// registry; nil in direct mode: nobody is registered).
	vetoes agent.Asker
}

// Meter paths (a sim node keeps all of these in its state directory).
const (
	MeterStore  = "/var/lib/meterupd/store"
	MeterConfig = "/etc/meterupd"
	MeterRun    = "/run/meterupd"
	MeterLock   = "/run/meterupd.lock"
)

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Clock = clock.Or(c.Clock)
	if c.Board == "" && c.StateDir != "" {
		c.Board = "sim"
	}
}

// Resolve settles an automatic board from the device tree.
func (c *Config) Resolve() error {
	c.defaults()
	if c.Board != "" && c.Board != "auto" {
		return nil
	}
	b, err := boards.Detect(boards.Config{})
	if err != nil {
		return fmt.Errorf("cannot tell which board this is (%w); name it with --board, or use --board sim --state DIR", err)
	}
	c.Board = b
	return nil
}

func (c *Config) sim() bool { return c.Board == "sim" }

// StorePath is the package store.
func (c *Config) StorePath() string {
	if c.Store != "" {
		return c.Store
	}
	if c.sim() {
		return filepath.Join(c.StateDir, "store")
	}
	return MeterStore
}

// ConfigPath is a provisioning file (keys.pem, identity.json).
func (c *Config) ConfigPath(name string) string {
	if c.sim() {
		return filepath.Join(c.StateDir, name)
	}
	return filepath.Join(MeterConfig, name)
}

// LockPath is the node's lock: one process at a time owns the flash.
func (c *Config) LockPath() string {
	if c.sim() {
		return filepath.Join(c.StateDir, "lock")
	}
	return MeterLock
}

// SocketPath is the local API's socket.
func (c *Config) SocketPath() string {
	if c.Socket != "" {
		return c.Socket
	}
	if c.sim() {
		return filepath.Join(c.StateDir, "meterupd.sock")
	}
	return filepath.Join(MeterRun, "meterupd.sock")
}

// Settings are the node's provisioning: trusted keys and identity, and
// what is wrong with them.
type Settings struct {
	Keys     *manifest.Keyring
	Identity agent.Identity
	// Problems are sentences, one per damaged file. A node with problems
	// runs but refuses signed installs.
	Problems []string
}

// ReadSettings reads keys.pem and identity.json. A missing file is not a
// problem (a node without keys refuses signed packages, one without
// identity matches only items that name no device type); a damaged one is
// a problem, reported, never an error that stops the node.
func ReadSettings(c *Config) Settings {
	var s Settings
	kp := c.ConfigPath("keys.pem")
	if b, err := os.ReadFile(kp); err == nil {
		if s.Keys, err = manifest.ParseKeyringPEM(b); err != nil {
			s.Keys = nil
			s.Problems = append(s.Problems, fmt.Sprintf("the trusted keys in %s cannot be read (%v)", kp, err))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.Problems = append(s.Problems, fmt.Sprintf("the trusted keys in %s cannot be read (%v)", kp, err))
	}
	ip := c.ConfigPath("identity.json")
	if b, err := os.ReadFile(ip); err == nil {
		if err := json.Unmarshal(b, &s.Identity); err != nil {
			s.Identity = agent.Identity{}
			s.Problems = append(s.Problems, fmt.Sprintf("the identity in %s cannot be read (%v)", ip, err))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.Problems = append(s.Problems, fmt.Sprintf("the identity in %s cannot be read (%v)", ip, err))
	}
	return s
}
