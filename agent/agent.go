package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/clock"
	"meterupd/journal"
	"meterupd/manifest"
	"meterupd/slots"
	"meterupd/throttle"
)

// Errors a caller (the CLI, later the head-end transport) tells apart.
var (
	ErrBusy         = errors.New("agent: an update is already in progress")
	ErrNotProvision = errors.New("agent: the node is not provisioned (empty journal)")
	// ErrJournalErased: the journal partition is erased but the factory
	// set F holds an image: the node was provisioned (or provisioning was
	// interrupted) and its journal is lost. Nothing is changed: a new
	// journal would not know which sets are good.
	ErrJournalErased = errors.New("agent: the journal partition is erased, but the factory set F holds an image")
	ErrNewerJournal  = errors.New("agent: the journal was written by a newer meterupd")
	ErrDigest        = errors.New("agent: digest mismatch")
	ErrTooLarge      = errors.New("agent: image larger than the slot")
	ErrNoPrevious    = errors.New("agent: no previous good set to roll back to")
	ErrNoTrial       = errors.New("agent: no trial to commit")
	ErrBadRequest    = errors.New("agent: bad install request")
	ErrNothing       = errors.New("agent: nothing to activate")
	// ErrAbandoned: an accepted update was abandoned before activation
	// (a payload that does not apply, a slot that cannot be written, a
	// digest that does not match once written). The running set is
	// untouched; the error carries the reason, and the journal's last
	// result says the same.
	ErrAbandoned = errors.New("agent: update abandoned")
	// ErrTrialRunning: an install asked for while a set is on trial (or
	// being activated). Installing would write over the previous good
	// set, the trial's only way back.
	ErrTrialRunning = errors.New("agent: a set is on trial: commit or roll back the trial first")
)

// HealthCheck is one post-switch check of the running set.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context, slot hw.Slot, want SlotInfo) error
	// Environmental marks a check that can fail for reasons outside the
	// set (the radio link: coverage, the network). It rejects a trial —
	// a new set must prove it links — but on the previous, known-good set
	// it is only reported: no meter goes to its factory set because it
	// stands in a basement.
	Environmental bool
}

// Options configure an Agent.
type Options struct {
	Board hw.Board
	// StoreDir is the package store: a directory on a file system that
	// survives power loss (payloads wait there until installed).
	StoreDir string
	// Health are the post-switch health checks; nil means DefaultHealth.
	Health []HealthCheck
	// Attempts is how many boots the bootloader gives a trial (and a
	// confirmed set) before falling back. Default 3.
	Attempts int
	// MaxStarts is the loop guard: an update that sees more agent starts
	// than this is abandoned (or rolled back). Default 32.
	MaxStarts int
	Logger    *slog.Logger
	// Keys are the trusted keys the node was provisioned with (a signed
	// key update in the journal replaces them).
	Keys *manifest.Keyring
	// Identity describes the node for item selection and requests.
	Identity Identity
	// Clock tells the time (manifest expiry) and times the trial's
	// verdict; nil means the system clock.
	Clock clock.Clock
	// TrialTimeout is how long a trial's health checks may take before
	// the agent gives up on a verdict and reboots, leaving the decision
	// to the bootloader's attempts (and, on a board with one, the
	// watchdog, which it stops feeding). Default 10 minutes.
	TrialTimeout time.Duration
	// OnCommit, when set, is called after every journal commit with the
	// record just committed (the daemon turns it into events). It runs on
	// the agent's goroutine and must not modify the record or call the
	// agent's commands.
	OnCommit func(*Record)
	// NotBefore is this agent's build time: a clock that reads earlier is
	// never valid, whatever the board says (schedule.go). Zero: no floor.
	NotBefore time.Time
	// Vetoes asks the registered local processes before an activation
	// (veto.go); nil: nobody is asked. MaxDefer bounds a deferral when
	// the update does not; default DefaultMaxDefer.
	Vetoes   Asker
	MaxDefer time.Duration
	// Throttle paces the bulk I/O (throttle.go); nil: the board's
	// (hw.ThrottleBoard), or none.
	Throttle *throttle.Throttle
}

// Agent drives the update state machine on one board. It is not safe for
// concurrent use: one process owns the node (the CLI takes a lock).
type Agent struct {
	opt Options
	b   hw.Board
	j   *journal.Journal
	rec *Record
	log *slog.Logger
	clk clock.Clock
	// verdictDue is the running trial's verdict deadline (UnixNano; 0:
	// none): the one field KeepWatchdog reads from another goroutine.
	verdictDue atomic.Int64
	// modemVer is the radio module's firmware version as it last told it
	// (issue 15; Record.ModemVersion is the journalled one).
	modemVer string
	ops      *audit.OpLog // the operational ring, opened on first use
	legalLog *audit.Log   // the legal log, opened on first use
}

func (o *Options) defaults() {
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Attempts > hw.MaxAttempts {
		o.Attempts = hw.MaxAttempts
	}
	if o.MaxStarts <= 0 {
		o.MaxStarts = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	if o.MaxDefer <= 0 {
		o.MaxDefer = DefaultMaxDefer
	}
	if o.TrialTimeout <= 0 {
		o.TrialTimeout = 10 * time.Minute
	}
}

// Open loads the journal of the board. It changes nothing on flash.
func Open(opt Options) (*Agent, error) {
	opt.defaults()
	jf, err := opt.Board.Partition(hw.PartJournal)
	if err != nil {
		return nil, fmt.Errorf("agent: journal partition: %w", err)
	}
	j, err := journal.Open(jf, journal.Options{Logger: opt.Logger})
	switch {
	case errors.Is(err, journal.ErrEmpty) && holdsImage(opt.Board, hw.SlotF):
		return nil, fmt.Errorf("%w: %w", ErrJournalErased, err)
	case errors.Is(err, journal.ErrEmpty):
		return nil, fmt.Errorf("%w: %w", ErrNotProvision, err)
	case errors.Is(err, journal.ErrNewerVersion):
		return nil, fmt.Errorf("%w: %w", ErrNewerJournal, err)
	case err != nil:
		return nil, fmt.Errorf("agent: %w", err)
	}
	var rec Record
	if err := j.Load(&rec); err != nil {
		return nil, fmt.Errorf("agent: load journal record: %w", err)
	}
	if rec.Version > RecordVersion {
		return nil, fmt.Errorf("%w: record version %d, this agent knows %d", ErrNewerJournal, rec.Version, RecordVersion)
	}
	if err := rec.check(); err != nil {
		return nil, fmt.Errorf("agent: journal record: %w", err)
	}
	if opt.Health == nil {
		opt.Health = DefaultHealth(opt.Board, &rec)
	}
	if opt.Throttle == nil {
		opt.Throttle = boardThrottle(opt.Board)
	}
	return &Agent{opt: opt, b: opt.Board, j: j, rec: &rec, log: opt.Logger, clk: opt.Clock}, nil
}

// holdsImage reports whether slot s's first erase block holds anything
// but the erased value (0xFF or 0x00, whichever the part erases to): a
// never-provisioned node has nothing in F.
func holdsImage(b hw.Board, s hw.Slot) bool {
	f, err := b.Slot(s)
	if err != nil {
		return false
	}
	blk := make([]byte, min(f.EraseSize(), 64<<10))
	if _, err := f.ReadAt(blk, 0); err != nil {
		return false
	}
	erased := func(v byte) bool {
		for _, c := range blk {
			if c != v {
				return false
			}
		}
		return true
	}
	return !erased(0xFF) && !erased(0x00)
}

// check rejects a record this code cannot act on safely.
func (r *Record) check() error {
	if r.Version < 1 {
		return fmt.Errorf("record version %d", r.Version)
	}
	if !r.Primary.Valid() {
		return fmt.Errorf("primary slot %q", r.Primary)
	}
	for s, si := range r.Slots {
		if !s.Valid() || si == nil || !si.State.Valid() {
			return fmt.Errorf("slot %q state", s)
		}
	}
	if u := r.Update; u != nil {
		if u.Target != hw.SlotA && u.Target != hw.SlotB || !u.From.Valid() || u.Target == u.From {
			return fmt.Errorf("update target %q from %q", u.Target, u.From)
		}
	}
	return nil
}

// Factory describes the factory image written into F and A.
type Factory struct {
	Version string
	SHA256  [32]byte
	Size    int64
}

// Provision formats the journal of a new node whose F and A hold the
// factory image: A and F good, B empty, A primary. It is the only writer of
// a first record; the agent never re-initialises a journal by itself.
func Provision(b hw.Board, f Factory) error {
	jf, err := b.Partition(hw.PartJournal)
	if err != nil {
		return fmt.Errorf("agent: journal partition: %w", err)
	}
	sha := hex.EncodeToString(f.SHA256[:])
	rec := &Record{
		Version: RecordVersion,
		Primary: hw.SlotA,
		Slots: map[hw.Slot]*SlotInfo{
			hw.SlotA: {State: slots.Good, Version: f.Version, SHA256: sha, Size: f.Size},
			hw.SlotB: {State: slots.Empty},
			hw.SlotF: {State: slots.Good, Version: f.Version, SHA256: sha, Size: f.Size},
		},
	}
	if _, err := journal.Format(jf, rec, journal.Options{}); err != nil {
		return fmt.Errorf("agent: format journal: %w", err)
	}
	return nil
}

// Record returns a copy of the current journal record.
func (a *Agent) Record() *Record { return a.rec.clone() }

// Journal gives access to the journal (history, statistics).
func (a *Agent) Journal() *journal.Journal { return a.j }

// commit makes r the new state: journal first, always.
func (a *Agent) commit(r *Record) error {
	if err := a.j.Commit(r); err != nil {
		return fmt.Errorf("agent: journal commit: %w", err)
	}
	a.rec = r
	if a.opt.OnCommit != nil {
		a.opt.OnCommit(r)
	}
	return nil
}

func (a *Agent) booted() (hw.Slot, error) {
	s, err := a.b.Boot().Booted()
	if err != nil {
		return "", fmt.Errorf("agent: booted slot: %w", err)
	}
	if !s.Valid() {
		return "", fmt.Errorf("agent: bootloader reports unknown slot %q", s)
	}
	return s, nil
}

// transition applies a slot event to r, by the slots model.
func transition(r *Record, s hw.Slot, ev slots.Event) error {
	si := r.slot(s)
	next, err := slots.Next(s, si.State, ev)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	si.State = next
	return nil
}

// storeBoot writes the boot state if it differs from what is stored.
func (a *Agent) storeBoot(want hw.BootState) error {
	bc := a.b.Boot()
	cur, err := bc.Load()
	if err == nil && sameBoot(cur, want) {
		return nil
	}
	if err := bc.Store(want); err != nil {
		return fmt.Errorf("agent: boot control: %w", err)
	}
	return nil
}

func sameBoot(x, y hw.BootState) bool {
	if !slices.Equal(x.Order, y.Order) {
		return false
	}
	for _, s := range x.Order {
		if x.Left[s] != y.Left[s] {
			return false
		}
	}
	return true
}

// goodOrder is the boot order of a node at rest: the primary, then the
// other updatable slot if it is good (F is always implied last). Every
// slot in it is good: the boot control never points at a slot the journal
// does not know as good, or as the armed trial.
func (a *Agent) goodOrder(r *Record) hw.BootState {
	bs := hw.BootState{Left: map[hw.Slot]int{}}
	if r.Primary != hw.SlotF && r.stateOf(r.Primary) == slots.Good {
		bs.Order = append(bs.Order, r.Primary)
	}
	for _, s := range []hw.Slot{hw.SlotA, hw.SlotB} {
		if s != r.Primary && r.stateOf(s) == slots.Good {
			bs.Order = append(bs.Order, s)
		}
	}
	for _, s := range bs.Order {
		bs.Left[s] = a.opt.Attempts
	}
	return bs
}
