package ubootboot

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"meterupd/boards/hw"
	"meterupd/boards/ubootenv"
)

// Environment variables of the contract (see the package doc).
const (
	VarOrder            = "meterupd_order"
	VarLeftPrefix       = "meterupd_left_" // + slot name: meterupd_left_B
	VarUpgradeAvailable = "upgrade_available"
	VarBootCount        = "bootcount"
	VarBootLimit        = "bootlimit"
	// CmdlineKey is the kernel argument the script sets: meterupd.slot=B.
	CmdlineKey = "meterupd.slot"
)

var slots = []hw.Slot{hw.SlotA, hw.SlotB, hw.SlotF}

var (
	// ErrCorrupt: the stored boot state cannot be read (no valid env copy,
	// or a variable the script cannot use). The bootloader then boots F.
	ErrCorrupt = fmt.Errorf("ubootboot: boot state unreadable (%w)", hw.ErrBootStateLost)
	// ErrBadBootState: Store was given a state the contract cannot hold
	// (unknown or repeated slot, attempts outside 0..hw.MaxAttempts).
	ErrBadBootState = errors.New("ubootboot: invalid boot state")
	// ErrUnknownBoot: the kernel command line does not say which slot
	// booted (no meterupd.slot=, or an unknown slot).
	ErrUnknownBoot = errors.New("ubootboot: booted slot unknown")
)

// VarError is an environment variable whose value the contract does not
// allow; it wraps ErrCorrupt.
type VarError struct {
	Name, Value, Reason string
}

func (e *VarError) Error() string {
	return fmt.Sprintf("ubootboot: %s=%q: %s", e.Name, e.Value, e.Reason)
}

func (e *VarError) Unwrap() error { return ErrCorrupt }

// Env is the environment storage the boot control needs;
// *ubootenv.Store implements it.
type Env interface {
	Load() (ubootenv.Env, error)
	// Update reads, lets fn change, and saves in one atomic write.
	Update(fn func(ubootenv.Env) error) error
}

// BootControl implements hw.BootControl over the U-Boot environment.
type BootControl struct {
	env  Env
	root string
	log  *slog.Logger
}

var _ hw.BootControl = (*BootControl)(nil)

// Option configures New.
type Option func(*BootControl)

// WithRoot prefixes /proc/cmdline (tests point it at a temporary tree).
func WithRoot(root string) Option { return func(b *BootControl) { b.root = root } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(b *BootControl) { b.log = l } }

// New returns the boot control over env.
func New(env Env, opts ...Option) *BootControl {
	b := &BootControl{env: env, root: "/", log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Booted reports the slot the script booted, from meterupd.slot= on the
// kernel command line (the last one wins, as the script appends it).
func (b *BootControl) Booted() (hw.Slot, error) {
	raw, err := os.ReadFile(filepath.Join(b.root, "proc", "cmdline"))
	if err != nil {
		return "", fmt.Errorf("ubootboot: read kernel command line: %w", err)
	}
	return ParseCmdline(string(raw))
}

// ParseCmdline finds meterupd.slot=X in a kernel command line.
func ParseCmdline(cmdline string) (hw.Slot, error) {
	found := ""
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, CmdlineKey+"="); ok {
			found = v
		}
	}
	if found == "" {
		return "", fmt.Errorf("%w: no %s= on the kernel command line", ErrUnknownBoot, CmdlineKey)
	}
	s := hw.Slot(found)
	if !s.Valid() {
		return "", fmt.Errorf("%w: %s=%q", ErrUnknownBoot, CmdlineKey, found)
	}
	return s, nil
}

// Load reads the boot state from the environment. With no valid copy it
// returns an error wrapping ErrCorrupt (and ubootenv.ErrNoValidCopy): the
// bootloader boots F then, and nothing here pretends otherwise. A missing
// meterupd_order is an empty order (the script boots F).
func (b *BootControl) Load() (hw.BootState, error) {
	env, err := b.env.Load()
	if err != nil {
		return hw.BootState{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return StateFromEnv(env)
}

// StateFromEnv reads the boot state out of an environment.
func StateFromEnv(env ubootenv.Env) (hw.BootState, error) {
	st := hw.BootState{Left: map[hw.Slot]int{}}
	order := env[VarOrder]
	for _, f := range strings.Fields(order) {
		s := hw.Slot(f)
		if !s.Valid() {
			return hw.BootState{}, &VarError{VarOrder, order, fmt.Sprintf("unknown slot %q", f)}
		}
		for _, p := range st.Order {
			if p == s {
				return hw.BootState{}, &VarError{VarOrder, order, fmt.Sprintf("slot %s twice", s)}
			}
		}
		st.Order = append(st.Order, s)
	}
	for _, s := range slots {
		name := VarLeftPrefix + string(s)
		v, ok := env[name]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > hw.MaxAttempts || strconv.Itoa(n) != v {
			return hw.BootState{}, &VarError{name, v, fmt.Sprintf("want a number 0..%d", hw.MaxAttempts)}
		}
		st.Left[s] = n
	}
	return st, nil
}

// Store writes s in one environment write, with the U-Boot bootcount
// variables that go with it (see ApplyState). The booted slot decides
// whether the first slot is a trial.
func (b *BootControl) Store(s hw.BootState) error {
	if err := validate(s); err != nil {
		return err
	}
	booted, err := b.Booted()
	if err != nil {
		// Unknown: count the first slot as a trial, the safe side.
		b.log.Warn("booted slot unknown, arming as a trial", slog.String("err", err.Error()))
		booted = ""
	}
	err = b.env.Update(func(env ubootenv.Env) error {
		return ApplyState(env, s, booted)
	})
	if err != nil {
		return fmt.Errorf("ubootboot: store boot state: %w", err)
	}
	return nil
}

func validate(s hw.BootState) error {
	for i, sl := range s.Order {
		if !sl.Valid() {
			return fmt.Errorf("%w: slot %q in order", ErrBadBootState, sl)
		}
		for _, p := range s.Order[:i] {
			if p == sl {
				return fmt.Errorf("%w: slot %s twice in order", ErrBadBootState, sl)
			}
		}
	}
	for sl, n := range s.Left {
		if !sl.Valid() {
			return fmt.Errorf("%w: attempts for slot %q", ErrBadBootState, sl)
		}
		if n < 0 || n > hw.MaxAttempts {
			return fmt.Errorf("%w: slot %s has %d attempts, want 0..%d", ErrBadBootState, sl, n, hw.MaxAttempts)
		}
	}
	return nil
}

// Next returns the slot the script boots for s: the first in Order with
// attempts left, else F.
func Next(s hw.BootState) hw.Slot {
	for _, sl := range s.Order {
		if s.Left[sl] > 0 {
			return sl
		}
	}
	return hw.SlotF
}

// ApplyState writes s into env, replacing the contract's variables:
// meterupd_order, meterupd_left_X (present for the slots in s.Left), and
// U-Boot's upgrade_available, bootcount, bootlimit. The next slot (Next)
// is a trial unless it is the booted one: upgrade_available=1,
// bootcount=0, bootlimit=its attempts; otherwise upgrade_available=0 and
// bootcount=0. So arming a trial (Order=[new, old], Left[new]=n while old
// runs) sets slot, counters and upgrade_available in the same write, and
// marking the running slot good clears upgrade_available.
func ApplyState(env ubootenv.Env, s hw.BootState, booted hw.Slot) error {
	if err := validate(s); err != nil {
		return err
	}
	names := make([]string, len(s.Order))
	for i, sl := range s.Order {
		names[i] = string(sl)
	}
	env[VarOrder] = strings.Join(names, " ")
	for _, sl := range slots {
		if n, ok := s.Left[sl]; ok {
			env[VarLeftPrefix+string(sl)] = strconv.Itoa(n)
		} else {
			delete(env, VarLeftPrefix+string(sl))
		}
	}
	next := Next(s)
	env[VarBootCount] = "0"
	env[VarBootLimit] = strconv.Itoa(s.Left[next])
	if next != booted && next != hw.SlotF {
		env[VarUpgradeAvailable] = "1"
	} else {
		env[VarUpgradeAvailable] = "0"
	}
	return nil
}
