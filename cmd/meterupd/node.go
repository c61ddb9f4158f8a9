package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"meterupd/agent"
	"meterupd/boards"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/journal"
	"meterupd/manifest"
)

// node is an opened board with its agent, owned by this process.
type node struct {
	board  hw.Board
	agent  *agent.Agent
	unlock func()
	reason string // --reason of the command
}

func (n *node) close() {
	if c, ok := n.board.(io.Closer); ok {
		c.Close()
	}
	if n.unlock != nil {
		n.unlock()
	}
}

// logger logs warnings (and with -v every step) to standard error, without
// timestamps: the console and the system log add their own.
func (env *cmdEnv) logger() *slog.Logger {
	lvl := slog.LevelWarn
	if env.verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: lvl,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
}

// storeDir is the package store: in the sim state directory, or --store.
func (env *cmdEnv) storeDir() string {
	if env.store != "" {
		return env.store
	}
	if env.board == "sim" {
		return filepath.Join(env.state, "store")
	}
	return "/var/lib/meterupd/store"
}

// configPath is a provisioning file: in the sim state directory, or in
// /etc/meterupd on a meter.
func (env *cmdEnv) configPath(name string) string {
	if env.board == "sim" {
		return filepath.Join(env.state, name)
	}
	return filepath.Join("/etc/meterupd", name)
}

// nodeConfig reads the provisioned trusted keys (keys.pem) and identity
// (identity.json). A missing file is not an error: a node without keys
// refuses signed packages, one without identity matches only items that
// name no device type.
func (env *cmdEnv) nodeConfig() (*manifest.Keyring, agent.Identity, error) {
	var id agent.Identity
	var keys *manifest.Keyring
	if b, err := os.ReadFile(env.configPath("keys.pem")); err == nil {
		if keys, err = manifest.ParseKeyringPEM(b); err != nil {
			return nil, id, fmt.Errorf("trusted keys %s: %w", env.configPath("keys.pem"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, id, err
	}
	if b, err := os.ReadFile(env.configPath("identity.json")); err == nil {
		if err := json.Unmarshal(b, &id); err != nil {
			return nil, id, fmt.Errorf("identity %s: %w", env.configPath("identity.json"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, id, err
	}
	return keys, id, nil
}

func (env *cmdEnv) lockPath() string {
	if env.board == "sim" {
		return filepath.Join(env.state, "lock")
	}
	return "/run/meterupd.lock"
}

// openBoard opens the board and takes the node's lock.
func (env *cmdEnv) openBoard() (hw.Board, func(), error) {
	if err := env.resolveBoard(); err != nil {
		return nil, nil, err
	}
	if env.board == "sim" && env.state == "" {
		return nil, nil, usageError{"the sim board needs --state DIR (or METERUPD_STATE)"}
	}
	if env.board == "sim" {
		if _, err := os.Stat(env.state); err != nil {
			return nil, nil, fmt.Errorf("no simulated node in %s: create one with `meterupd sim init %s`", env.state, env.state)
		}
	}
	unlock, err := lockFile(env.lockPath())
	if err != nil {
		return nil, nil, err
	}
	b, err := boards.Open(env.board, boards.Config{StateDir: env.state, Logger: env.logger()})
	if err != nil {
		unlock()
		return nil, nil, explainBoard(env, err)
	}
	return b, unlock, nil
}

// openNode opens the board and the agent (which reads the journal).
func (env *cmdEnv) openNode() (*node, error) {
	b, unlock, err := env.openBoard()
	if err != nil {
		return nil, err
	}
	n := &node{board: b, unlock: unlock}
	keys, id, err := env.nodeConfig()
	if err != nil {
		n.close()
		return nil, err
	}
	a, err := agent.Open(agent.Options{Board: b, StoreDir: env.storeDir(), Logger: env.logger(), Keys: keys, Identity: id})
	if err != nil {
		n.close()
		return nil, explainJournal(err)
	}
	n.agent = a
	return n, nil
}

func explainBoard(env *cmdEnv, err error) error {
	switch {
	case errors.Is(err, sim.ErrNoState):
		return fmt.Errorf("no simulated node in %s: create one with `meterupd sim init %s` (%w)", env.state, env.state, err)
	case errors.Is(err, sim.ErrCorruptState):
		return fmt.Errorf("the simulated node in %s is damaged; nothing was changed (%w)", env.state, err)
	case errors.Is(err, boards.ErrUnknownBoard):
		return fmt.Errorf("%w; choose one with --board", err)
	}
	return err
}

func explainJournal(err error) error {
	switch {
	case errors.Is(err, agent.ErrJournalErased):
		return fmt.Errorf("the journal partition is erased, but the node holds a factory set: its journal was lost (or provisioning was interrupted); nothing was changed (%w)", err)
	case errors.Is(err, agent.ErrNotProvision):
		return fmt.Errorf("the journal is empty: this node was never provisioned; nothing was changed (%w)", err)
	case errors.Is(err, agent.ErrNewerJournal):
		return fmt.Errorf("the journal was written by a newer meterupd; this version will not touch it (%w)", err)
	case errors.Is(err, journal.ErrForeign), errors.Is(err, journal.ErrCorrupt):
		return fmt.Errorf("the journal partition holds no valid journal; nothing was changed, the bootloader keeps its last order (%w)", err)
	}
	return err
}

// rebooted turns the sim board's reboot into a sentence.
func rebooted(env *cmdEnv, n *node, err error) error {
	if !errors.Is(err, hw.ErrRebooted) {
		return err
	}
	s, _ := n.board.Boot().Booted()
	fmt.Fprintf(env.stdout, "node rebooted: the bootloader started slot %s; the agent continues when it starts (meterupd run)\n", s)
	return nil
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
