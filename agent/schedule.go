package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"meterupd/boards/hw"
)

// Scheduled activation (issue 13). An installed set waits in phase
// Installed for one of three things: now (Update.Activate), a command
// (`meterupd activate`), or a time (Update.ActivateAt, UTC). The schedule
// is a fact beside the phase, not a phase of its own: an older agent that
// drops the field keeps the set installed and waits for a command, which
// is the safe way to lose it.
//
// A time is acted on only when the clock is valid: the board says so
// (hw.ClockSource: an RTC whose valid flag is set, or a time set since
// boot from a trusted source), and the time is not earlier than the
// agent's own build (Options.NotBefore). A node whose clock is not valid
// keeps the schedule, reports that it waits for a command, and activates
// on `meterupd activate` (or once the clock becomes valid and the time has
// come).

// ClockState is whether the node may act on a time, and why not.
type ClockState struct {
	Valid bool `json:"valid"`
	// Reason says why the clock is not valid.
	Reason string `json:"reason,omitempty"`
}

// Clock reports whether the node's clock is valid now (see the package
// comment of schedule.go).
func (a *Agent) Clock() (time.Time, ClockState) {
	now := a.clk.Now()
	cs, ok := a.b.(hw.ClockSource)
	if !ok {
		return now, ClockState{Reason: "the board has no trusted clock"}
	}
	valid, err := cs.ClockValid()
	switch {
	case err != nil:
		return now, ClockState{Reason: "the clock's valid flag cannot be read: " + err.Error()}
	case !valid:
		return now, ClockState{Reason: "the board's clock is not set from a trusted source"}
	case !a.opt.NotBefore.IsZero() && now.Before(a.opt.NotBefore):
		return now, ClockState{Reason: fmt.Sprintf("the clock reads %s, earlier than this agent's build (%s)",
			now.UTC().Format(time.RFC3339), a.opt.NotBefore.UTC().Format(time.RFC3339))}
	}
	return now, ClockState{Valid: true}
}

// checkActivateAt refuses an activation time that cannot be meant: one
// earlier than the agent's build (an unset RTC's 1970 or 2000).
func (a *Agent) checkActivateAt(at time.Time) error {
	if at.IsZero() {
		return nil
	}
	if !a.opt.NotBefore.IsZero() && at.Before(a.opt.NotBefore) {
		return fmt.Errorf("%w: activation time %s is earlier than this agent's build (%s)", ErrBadRequest,
			at.UTC().Format(time.RFC3339), a.opt.NotBefore.UTC().Format(time.RFC3339))
	}
	if at.Unix() <= 0 {
		return fmt.Errorf("%w: activation time %s", ErrBadRequest, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// scheduleOn sets u's activation: at a time, or (zero) on a command.
func scheduleOn(u *Update, at time.Time) {
	u.ActivateAt = 0
	if !at.IsZero() {
		u.Activate, u.ActivateAt = false, at.Unix()
	}
}

// Schedule sets, moves or (at zero) cancels the activation time of the
// installed set; cancelled, it waits for a command. A time already past
// activates now when the clock is valid (on the sim board Schedule then
// returns hw.ErrRebooted).
func (a *Agent) Schedule(ctx context.Context, at time.Time) error {
	u := a.rec.Update
	if u == nil || u.Phase != Installed && u.Phase != Installing && u.Phase != Downloaded {
		return fmt.Errorf("%w: no set is being installed or waits for activation", ErrNothing)
	}
	if err := a.checkActivateAt(at); err != nil {
		return err
	}
	r := a.rec.clone()
	r.Update.Activate = false
	scheduleOn(r.Update, at)
	if at.IsZero() {
		a.updateLog(r.Update).Info("activation schedule cancelled: waits for a command")
	} else {
		a.updateLog(r.Update).Info("activation scheduled", slog.Time("at", at.UTC()))
	}
	if err := a.commit(r); err != nil {
		return err
	}
	if u.Phase != Installed {
		return nil // the install in progress goes on; its end reads the schedule
	}
	return a.drive(ctx)
}

// ScheduledAt is the activation time of the installed set, if one is
// scheduled (the daemon sets a timer for it).
func (a *Agent) ScheduledAt() (time.Time, bool) {
	u := a.rec.Update
	if u == nil || u.Phase != Installed || u.ActivateAt == 0 {
		return time.Time{}, false
	}
	return time.Unix(u.ActivateAt, 0).UTC(), true
}

// due reports whether the installed set's scheduled activation has come
// (the clock is valid and reads the time or later).
func (a *Agent) due(u *Update) bool {
	if u.ActivateAt == 0 {
		return false
	}
	now, cs := a.Clock()
	if !cs.Valid {
		a.updateLog(u).Info("activation scheduled, but the clock is not valid: waits for a command", slog.String("why", cs.Reason))
		return false
	}
	return !now.Before(time.Unix(u.ActivateAt, 0))
}
