package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"meterupd/agent"
	"meterupd/boards"
	"meterupd/boards/hw"
	"meterupd/journal"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/validate"
)

// ErrNoNode: the sim state directory holds no node.
var ErrNoNode = errors.New("node: no simulated node")

// Node is an opened board with its agent. It is not safe for concurrent
// use: the daemon calls it from its one owner goroutine, a direct command
// from its only one.
type Node struct {
	cfg      Config
	board    hw.Board
	agent    *agent.Agent
	settings Settings
	unlock   func()
	// Direct: the node was opened by a command, not by the daemon; the
	// agent is started before each command that changes the node.
	direct bool
	// emit gets the state events of the command in progress (direct).
	emit func(localapi.Event)
	// Issue 12: the console's login state, and where its events go (the
	// daemon's subscribers).
	con     *consoleAuth
	onEvent func(localapi.Event)
}

func (n *Node) emitState() {
	if n.emit == nil {
		return
	}
	if st, err := n.Status(context.Background()); err == nil {
		n.emit(localapi.Event{Kind: "state", Status: st})
	}
}

// Open takes the node's lock and opens it (direct mode: no daemon runs).
func Open(cfg Config) (*Node, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	if err := cfg.checkState(); err != nil {
		return nil, err
	}
	unlock, err := lockFile(cfg.LockPath())
	if err != nil {
		return nil, err
	}
	var n *Node
	n, err = openLocked(cfg, func(*agent.Record) { n.emitState() })
	if err != nil {
		unlock()
		return nil, err
	}
	n.unlock, n.direct = unlock, true
	return n, nil
}

func (c *Config) checkState() error {
	if !c.sim() {
		return nil
	}
	if c.StateDir == "" {
		return fmt.Errorf("%w: the sim board needs --state DIR (or METERUPD_STATE)", ErrNoNode)
	}
	if _, err := os.Stat(c.StateDir); err != nil {
		return fmt.Errorf("no simulated node in %s: create one with `meterupd sim init %s` (%w)", c.StateDir, c.StateDir, ErrNoNode)
	}
	return nil
}

// OpenBoard takes the node's lock and opens its board alone, for the
// commands outside the command table (the sim's, the boot environment's);
// done closes it and releases the lock.
func OpenBoard(cfg Config) (b hw.Board, done func(), err error) {
	if err := cfg.Resolve(); err != nil {
		return nil, nil, err
	}
	if err := cfg.checkState(); err != nil {
		return nil, nil, err
	}
	unlock, err := lockFile(cfg.LockPath())
	if err != nil {
		return nil, nil, err
	}
	b, err = boards.Open(cfg.Board, boards.Config{StateDir: cfg.StateDir, Logger: cfg.Logger})
	if err != nil {
		unlock()
		return nil, nil, explainBoard(&cfg, err)
	}
	return b, func() {
		if c, ok := b.(io.Closer); ok {
			c.Close()
		}
		unlock()
	}, nil
}

// openLocked opens the board and the agent; the caller holds the lock.
func openLocked(cfg Config, onCommit func(*agent.Record)) (*Node, error) {
	var b hw.Board
	var err error
	if cfg.OpenBoard != nil {
		b, err = cfg.OpenBoard()
	} else {
		b, err = boards.Open(cfg.Board, boards.Config{StateDir: cfg.StateDir, Logger: cfg.Logger})
	}
	if err != nil {
		return nil, explainBoard(&cfg, err)
	}
	n := &Node{cfg: cfg, board: b, settings: ReadSettings(&cfg)}
	a, err := agent.Open(agent.Options{Board: b, StoreDir: cfg.StorePath(), Logger: cfg.Logger,
		Keys: n.settings.Keys, Identity: n.settings.Identity, Clock: cfg.Clock, OnCommit: onCommit,
		NotBefore: BuildTime(), Vetoes: cfg.vetoes})
	if err != nil {
		n.Close()
		return nil, explainJournal(err)
	}
	n.agent = a
	n.openConsole() // issue 12
	return n, nil
}

// Close closes the board and releases the lock (direct mode).
func (n *Node) Close() {
	if c, ok := n.board.(io.Closer); ok {
		c.Close()
	}
	if n.unlock != nil {
		n.unlock()
		n.unlock = nil
	}
}

// Agent is the node's agent (for commands outside the command table).
func (n *Node) Agent() *agent.Agent { return n.agent }

// Board is the node's board.
func (n *Node) Board() hw.Board { return n.board }

// Start reconciles the booted set with the journal and drives the update
// in progress (agent.Start).
func (n *Node) Start(ctx context.Context) error { return n.agent.Start(ctx) }

// Booted is the slot the bootloader started ("?" when it cannot say).
func (n *Node) Booted() hw.Slot {
	s, err := n.board.Boot().Booted()
	if err != nil {
		return "?"
	}
	return s
}

// Status is the node's wire status: the agent's, with this meterupd's
// version and the configuration problems.
func (n *Node) Status(ctx context.Context) (agent.Status, error) {
	st, err := n.agent.Status(ctx)
	if err != nil {
		return st, err
	}
	st.Agent = Version().Version
	st.Problems = append([]string(nil), n.settings.Problems...)
	return st, nil
}

// RefreshRadio asks the board's radio, if it has one, so that status shows
// a fresh answer (bounded: a radio that does not answer is reported so),
// and the updatable module its firmware version (issue 15).
func (n *Node) RefreshRadio(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, radioTimeout) // both questions together
	defer cancel()
	if r, ok := n.board.(hw.Radio); ok {
		r.Linked(ctx) // the answer, or why not, is kept by the board
	}
	n.agent.RefreshModem(ctx)
}

// Handle executes one command of the table on this node (localapi.Handler).
// In direct mode install first starts the agent (reconcile, resume), as
// the daemon did when it started; activate, rollback and commit act on the
// journal's state as it is (commit confirms a trial that no start has
// judged yet).
func (n *Node) Handle(ctx context.Context, req localapi.Request, emit func(localapi.Event)) (any, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	if n.direct {
		n.emit = emit
		defer func() { n.emit = nil }()
	}
	switch req.Cmd {
	case "status":
		if n.direct {
			n.RefreshRadio(ctx)
		}
		return n.Status(ctx)
	case "journal":
		return n.agent.History()
	case "audit": // issue 13
		return n.agent.Audit()
	case "version":
		v := Version()
		v.Board = n.board.Name()
		return v, nil
	case "events":
		return nil, &localapi.Error{Code: localapi.CodeBadRequest, Message: "events need the daemon (meterupd run)"}
	// The head-end link's (issue 10).
	case "link-facts":
		if req.Link != nil {
			if err := n.agent.SetLinkFacts(*req.Link); err != nil {
				return nil, err
			}
		}
		return n.agent.LinkFacts(), nil
	case "needs":
		names, err := n.agent.Needs(req.Manifest)
		var pe *agent.PackageError
		if errors.As(err, &pe) {
			return nil, &checkedError{err: err, checks: pe.Checks}
		}
		if names == nil {
			names = []string{}
		}
		return names, err
	case "request":
		var m *manifest.Manifest
		if len(req.Manifest) > 0 {
			keys, err := n.agent.Keyring()
			if err != nil {
				return nil, err
			}
			if m, err = manifest.ReadManifest(bytes.NewReader(req.Manifest), keys); err != nil {
				return nil, err
			}
		}
		return n.agent.Request(m)
	// Issue 12: the console's login, and its sessions on mutating commands.
	case "challenge", "login", "logout", "revoke":
		return n.consoleCommand(req)
	}
	if req.Via == localapi.ViaConsole {
		if err := n.consoleAllows(ctx, req); err != nil {
			return nil, err
		}
	}
	if n.direct && req.Cmd == "install" {
		// Start decides a pending trial (it runs the health checks and
		// commits): an install must not do that behind the user's back.
		if u := n.agent.Record().Update; u != nil && (u.Phase == agent.Trial || u.Phase == agent.Activating) && !req.CommitTrial {
			return nil, refused("install", fmt.Errorf("%w: version %s is on trial in slot %s", agent.ErrTrialRunning, u.Item.Version, u.Target))
		}
		if err := n.agent.Start(ctx); err != nil {
			if errors.Is(err, hw.ErrRebooted) {
				return n.outcome(ctx, "", nil, err)
			}
			return nil, err
		}
	}
	switch req.Cmd {
	case "install":
		return n.install(ctx, req)
	case "activate":
		return n.activate(ctx, req)
	case "rollback":
		err := n.agent.Rollback(ctx, req.Reason)
		return n.outcome(ctx, "rollback started", nil, refused("rollback", err))
	case "commit":
		err := n.agent.Commit(ctx)
		return n.outcome(ctx, "committed", nil, refused("commit", err))
	// Issue 13.
	case "schedule":
		return n.schedule(ctx, req)
	}
	return nil, &localapi.Error{Code: localapi.CodeUnknownCommand, Message: fmt.Sprintf("unknown command %q", req.Cmd)}
}

func refused(cmd string, err error) error {
	if err == nil || errors.Is(err, hw.ErrRebooted) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%s refused: %w", cmd, err)
}

// outcome answers a command that changed the node: its sentence, or the
// error; a reboot (sim board) is an outcome, not an error.
func (n *Node) outcome(ctx context.Context, msg string, checks [][]validate.Result, err error) (any, error) {
	if err != nil && !errors.Is(err, hw.ErrRebooted) {
		return nil, err
	}
	o := localapi.Outcome{Message: msg}
	for _, c := range checks {
		o.Checks = append(o.Checks, c...)
	}
	if errors.Is(err, hw.ErrRebooted) {
		o.Rebooted, o.Booted = true, n.Booted()
		return o, nil // the agent must start again before status means anything
	}
	st, serr := n.Status(ctx)
	if serr == nil {
		o.Status = st
	}
	return o, nil
}

// install performs an install request: a signed package, or an image or
// delta chain (the development path).
func (n *Node) install(ctx context.Context, req localapi.Request) (any, error) {
	before := n.agent.Record()
	if len(req.Paths) == 1 && !req.Delta && agent.IsPackage(req.Paths[0]) {
		return n.installPackage(ctx, req, before)
	}
	if req.SHA256 == "" || req.Version == "" {
		return nil, &localapi.Error{Code: localapi.CodeBadRequest, Message: "install needs a signed package, or an image with --sha256 HEX and --version V"}
	}
	item := agent.InstallItem{Kind: agent.FullImage, Version: req.Version, SHA256: req.SHA256, Payloads: req.Paths}
	if req.Delta {
		item.Kind, item.SourceSHA256 = agent.Delta, req.SourceSHA256
	}
	at, _ := req.ActivationTime() // checked by req.Check
	err := n.agent.Install(ctx, agent.InstallRequest{ID: req.Job, Origin: n.origin(req), Item: item, Activate: !req.NoActivate, CommitTrial: req.CommitTrial, ActivateAt: at,
		MaxDefer: time.Duration(req.MaxDeferS) * time.Second, Force: req.Force})
	if errors.Is(err, agent.ErrAbandoned) {
		return nil, n.abandonedErr(n.agent.Record())
	}
	if err != nil && !errors.Is(err, hw.ErrRebooted) {
		return nil, refused("install", err)
	}
	if errors.Is(err, hw.ErrRebooted) {
		return n.outcome(ctx, fmt.Sprintf("installed and verified version %s; trial armed", req.Version), nil, err)
	}
	rec := n.agent.Record()
	if aerr := n.abandoned(before, rec); aerr != nil {
		return nil, aerr
	}
	if rec.Update == nil {
		return nil, fmt.Errorf("install refused: the agent ended the install without a result; %s", n.trueState(rec))
	}
	return n.outcome(ctx, installedMsg(req.Version, rec), nil, nil)
}

func (n *Node) installPackage(ctx context.Context, req localapi.Request, before *agent.Record) (any, error) {
	if len(n.settings.Problems) > 0 {
		return nil, fmt.Errorf("install refused: %s; this node refuses signed packages until that is fixed", strings.Join(n.settings.Problems, "; "))
	}
	f, err := os.Open(req.Paths[0])
	if err != nil {
		return nil, fmt.Errorf("install refused: %w", err)
	}
	defer f.Close()
	at, _ := req.ActivationTime() // checked by req.Check
	err = n.agent.InstallPackageWith(ctx, f, agent.InstallRequest{ID: req.Job, Origin: n.origin(req), Activate: !req.NoActivate, CommitTrial: req.CommitTrial, ActivateAt: at,
		MaxDefer: time.Duration(req.MaxDeferS) * time.Second, Force: req.Force})
	if errors.Is(err, agent.ErrAbandoned) {
		rec := n.agent.Record()
		aerr := n.abandonedErr(rec)
		if rec.Last != nil {
			return nil, &checkedError{err: aerr, checks: rec.Last.Checks}
		}
		return nil, aerr
	}
	var pe *agent.PackageError
	if errors.As(err, &pe) {
		return nil, &checkedError{err: refused("install", err), checks: pe.Checks}
	}
	if err != nil && !errors.Is(err, hw.ErrRebooted) {
		return nil, refused("install", err)
	}
	rec := n.agent.Record()
	var checks [][]validate.Result
	if rec.Update != nil {
		checks = append(checks, rec.Update.Checks)
	}
	if errors.Is(err, hw.ErrRebooted) {
		v := ""
		if rec.Update != nil {
			v = rec.Update.Item.Version
		}
		return n.outcome(ctx, fmt.Sprintf("signed package verified, version %s installed and verified; trial armed", v), checks, err)
	}
	if aerr := n.abandoned(before, rec); aerr != nil {
		if rec.Last != nil {
			return nil, &checkedError{err: aerr, checks: rec.Last.Checks}
		}
		return nil, aerr
	}
	if rec.Update == nil {
		msg := "package accepted"
		if rec.Last != nil && !reflect.DeepEqual(before.Last, rec.Last) {
			msg += ": " + rec.Last.Reason
		}
		return n.outcome(ctx, msg, checks, nil)
	}
	return n.outcome(ctx, installedMsg(rec.Update.Item.Version, rec), checks, nil)
}

// abandoned tells whether the install just made ended abandoned: then it
// is an error, with the reason and the node's true state.
func (n *Node) abandoned(before, after *agent.Record) error {
	if after.Update != nil || after.Last == nil || after.Last.Code != agent.Abandoned || reflect.DeepEqual(before.Last, after.Last) {
		return nil
	}
	return n.abandonedErr(after)
}

// abandonedErr is the sentence of an install the agent accepted and then
// abandoned (agent.ErrAbandoned): the reason and the node's true state.
func (n *Node) abandonedErr(rec *agent.Record) error {
	reason := "the agent abandoned it"
	if rec.Last != nil && rec.Last.Reason != "" {
		reason = rec.Last.Reason
	}
	return fmt.Errorf("install abandoned: %s; %s", reason, n.trueState(rec))
}

// trueState is a sentence on what runs: after an abandoned install nothing
// changed on the running set.
func (n *Node) trueState(r *agent.Record) string {
	s := n.Booted()
	v := "unknown"
	if si := r.Slots[s]; si != nil && si.Version != "" {
		v = si.Version
	}
	return fmt.Sprintf("the node still runs version %s in slot %s", v, s)
}

// checkedError is a refusal that carries the validation outcomes.
type checkedError struct {
	err    error
	checks []validate.Result
}

func (e *checkedError) Error() string { return e.err.Error() }
func (e *checkedError) Unwrap() error { return e.err }

// Checks are the validation outcomes of the refused package.
func (e *checkedError) Checks() []validate.Result { return e.checks }

// BoardExplainer turns a board driver's error into a sentence for the
// person at the console, or returns nil when it does not know the error.
// Drivers that only some builds link (the sim board) register theirs, so
// that this package imports no driver.
type BoardExplainer func(c *Config, err error) error

var explainers []BoardExplainer

// RegisterExplainer adds a BoardExplainer (from an init function).
func RegisterExplainer(e BoardExplainer) { explainers = append(explainers, e) }

func explainBoard(c *Config, err error) error {
	for _, e := range explainers {
		if x := e(c, err); x != nil {
			return x
		}
	}
	if errors.Is(err, boards.ErrUnknownBoard) {
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

// radioTimeout bounds how long a radio refresh waits for the modem.
const radioTimeout = 5 * time.Second
