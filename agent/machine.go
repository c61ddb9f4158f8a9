package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"meterupd/boards/hw"
	"meterupd/slots"
)

// Start is what the agent does at every start of the node: reconcile the
// slot the bootloader booted with the journal, then drive any update in
// progress to its next resting point. On the sim board a reboot returns
// hw.ErrRebooted: the caller opens a new Agent and calls Start again, as
// the init system of a real node would.
func (a *Agent) Start(ctx context.Context) error {
	if u := a.rec.Update; u != nil && u.Phase != Downloaded && u.Phase != Installing && u.Phase != Installed {
		r := a.rec.clone()
		r.Update.Starts++
		if err := a.commit(r); err != nil {
			return err
		}
	}
	a.started = true
	return a.drive(ctx)
}

// drive runs steps until the state machine rests (done) or fails.
func (a *Agent) drive(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := a.step(ctx)
		if err != nil || done {
			return err
		}
	}
}

// step does one phase's work. Each case performs at most one side effect
// and records the next state in the journal before the following side
// effect; after a power cut, Start re-enters here from the journal and the
// case redoes or skips its side effect idempotently (the resume table).
func (a *Agent) step(ctx context.Context) (done bool, err error) {
	r := a.rec.clone()
	u := r.Update
	if u == nil {
		return true, a.rest(ctx)
	}
	booted, err := a.booted()
	if err != nil {
		return false, err
	}
	log := a.log.With(slog.String("update", u.ID), slog.String("phase", string(u.Phase)), slog.String("target", string(u.Target)))

	switch u.Phase {
	case Downloaded:
		if err := transition(r, u.Target, slots.Write); err != nil {
			return false, a.abandon(r, err.Error())
		}
		*r.slot(u.Target) = SlotInfo{State: slots.Updating}
		u.Phase, u.Written, u.Chk = Installing, 0, nil
		log.Info("installing", slog.String("version", u.Item.Version))
		return false, a.commit(r)

	case Installing:
		// The slot being written must not be bootable: drop it from the
		// boot order before the first erase (idempotent on resume).
		if err := a.storeBoot(a.goodOrder(r)); err != nil {
			return false, err
		}
		return false, a.install(ctx, r)

	case Installed:
		if !u.Activate {
			return true, nil // waits for `meterupd activate`
		}
		if err := transition(r, u.Target, slots.Arm); err != nil {
			return false, a.abandon(r, err.Error())
		}
		u.Phase = Activating
		// The package is consumed once its set is activated: from now a
		// replay of it is refused, and its key updates are in force.
		r.Floor = max(r.Floor, u.Seq)
		if u.Keys != nil {
			r.Keys = u.Keys
		}
		log.Info("activating")
		return false, a.commit(r)

	case Activating:
		if booted == u.Target {
			u.Phase = Trial
			return false, a.commit(r)
		}
		if u.Starts > a.opt.MaxStarts {
			return false, a.reject(r, fmt.Sprintf("activation did not complete after %d starts", u.Starts))
		}
		cur, err := a.b.Boot().Load()
		armed := err == nil && len(cur.Order) > 0 && cur.Order[0] == u.Target
		if armed && cur.Left[u.Target] <= 0 && a.started {
			// The bootloader spent every attempt on the new set and
			// went back: it did not boot.
			return false, a.reject(r, fmt.Sprintf("the new set in %s did not boot: the bootloader's %d attempts ran out and it started %s", u.Target, a.opt.Attempts, booted))
		}
		if !armed {
			// Arm the trial: one boot-control write.
			bs := a.goodOrder(r)
			bs.Order = append([]hw.Slot{u.Target}, bs.Order...)
			bs.Left[u.Target] = a.opt.Attempts
			if err := a.storeBoot(bs); err != nil {
				return false, err
			}
			log.Info("trial armed, rebooting")
		}
		return false, a.reboot()

	case Trial:
		if booted != u.Target {
			return false, a.reject(r, fmt.Sprintf("the new set in %s stopped booting: the bootloader started %s", u.Target, booted))
		}
		if u.Starts > a.opt.Attempts+1 {
			return false, a.reject(r, fmt.Sprintf("the new set booted %d times without passing its health checks", u.Starts))
		}
		if err := a.health(ctx, u.Target, a.trialInfo(r), true); err != nil {
			return false, a.reject(r, "health check failed on the new set: "+err.Error())
		}
		return false, a.commitTrial(r)

	case RollingBack:
		if err := a.storeBoot(a.goodOrder(r)); err != nil {
			return false, err
		}
		switch {
		case booted == u.From:
			if u.From != hw.SlotF {
				if err := a.health(ctx, u.From, *r.slot(u.From), false); err != nil {
					return false, a.fallBack(r, fmt.Sprintf("%s; then the previous set in %s failed its health check: %v", u.Reason, u.From, err))
				}
			}
			log.Info("rolled back", slog.String("reason", u.Reason))
			r.Last = &Result{ID: u.ID, Code: RolledBack, Version: r.slot(u.From).Version, Slot: u.From, Reason: u.Reason}
			if u.From == hw.SlotF {
				r.Last.Code, r.Last.Version = FellBack, r.slot(hw.SlotF).Version
			}
			r.Last.Checks = u.Checks
			r.Update = nil
			return false, a.commit(r)
		case booted == hw.SlotF:
			return false, a.fallBack(r, fmt.Sprintf("%s; then the previous set in %s did not boot", u.Reason, u.From))
		case u.Starts > a.opt.MaxStarts:
			return false, a.fallBack(r, fmt.Sprintf("%s; the node did not return to %s after %d starts", u.Reason, u.From, u.Starts))
		default:
			return false, a.reboot() // still on the rejected set
		}

	case FallingBack:
		if err := a.storeBoot(a.goodOrder(r)); err != nil {
			return false, err
		}
		if booted != hw.SlotF && r.stateOf(booted) != slots.Good {
			return false, a.reboot()
		}
		log.Warn("fell back", slog.String("to", string(booted)), slog.String("reason", u.Reason))
		r.Primary = booted
		r.Last = &Result{ID: u.ID, Code: FellBack, Version: r.slot(booted).Version, Slot: booted, Reason: u.Reason}
		r.Last.Checks = u.Checks
		r.Update = nil
		return false, a.commit(r)
	}
	return false, fmt.Errorf("agent: journal holds unknown phase %q", u.Phase)
}

// trialInfo is what the trial slot must hold: the item's image.
func (a *Agent) trialInfo(r *Record) SlotInfo {
	it := r.Update.Item
	return SlotInfo{State: slots.Trial, Version: it.Version, SHA256: it.SHA256, Size: it.Size}
}

// commitTrial confirms the trial set: journal first, then the boot order
// (in rest).
func (a *Agent) commitTrial(r *Record) error {
	u := r.Update
	if err := transition(r, u.Target, slots.Commit); err != nil {
		return err
	}
	r.Primary = u.Target
	r.Last = &Result{ID: u.ID, Code: Committed, Version: u.Item.Version, Slot: u.Target}
	r.Last.Checks = u.Checks
	r.Update = nil
	a.log.Info("committed", slog.String("slot", string(u.Target)), slog.String("version", u.Item.Version))
	return a.commit(r)
}

// reject marks the trial set bad and starts the rollback.
func (a *Agent) reject(r *Record, reason string) error {
	u := r.Update
	if err := transition(r, u.Target, slots.Fail); err != nil {
		return err
	}
	r.slot(u.Target).Reason = reason
	u.Phase, u.Reason = RollingBack, reason
	a.log.Warn("trial rejected", slog.String("slot", string(u.Target)), slog.String("reason", reason))
	return a.commit(r)
}

// fallBack marks the previous set bad too and heads for F.
func (a *Agent) fallBack(r *Record, reason string) error {
	u := r.Update
	if u.From != hw.SlotF && r.stateOf(u.From) == slots.Good {
		if err := transition(r, u.From, slots.Fail); err != nil {
			return err
		}
		r.slot(u.From).Reason = reason
	}
	u.Phase, u.Reason = FallingBack, reason
	return a.commit(r)
}

// abandon stops an update before activation: the target slot is bad (it
// may hold anything), the running set is untouched.
func (a *Agent) abandon(r *Record, reason string) error {
	u := r.Update
	si := r.slot(u.Target)
	if si.State != slots.Empty && si.State != slots.Bad {
		if err := transition(r, u.Target, slots.Fail); err != nil {
			return err
		}
	}
	if si.State == slots.Bad {
		si.Reason = reason
	}
	r.Last = &Result{ID: u.ID, Code: Abandoned, Version: u.Item.Version, Slot: u.From, Reason: reason}
	r.Last.Checks = u.Checks
	r.Update = nil
	a.log.Warn("update abandoned", slog.String("reason", reason))
	return a.commit(r)
}

// rest is the node at rest: reconcile the booted slot with the journal and
// make the boot order match it (this also marks the boot good, restoring
// the attempts the bootloader spent).
func (a *Agent) rest(ctx context.Context) error {
	r := a.rec.clone()
	booted, err := a.booted()
	if err != nil {
		return err
	}
	if booted != r.Primary {
		switch {
		case booted != hw.SlotF && r.stateOf(booted) == slots.Good:
			// The bootloader gave up on the primary and started the
			// other good set.
			reason := fmt.Sprintf("%s did not boot: the bootloader's attempts ran out and it started %s", r.Primary, booted)
			old := r.Primary
			if old != hw.SlotF && r.stateOf(old) == slots.Good {
				if err := transition(r, old, slots.Fail); err != nil {
					return err
				}
				r.slot(old).Reason = reason
			}
			r.Primary = booted
			r.Last = &Result{Code: RolledBack, Version: r.slot(booted).Version, Slot: booted, Reason: reason}
			if err := a.commit(r); err != nil {
				return err
			}
		case booted == hw.SlotF:
			reason := fmt.Sprintf("%s did not boot and no other good set did: the bootloader started the factory set F", r.Primary)
			for _, s := range []hw.Slot{hw.SlotA, hw.SlotB} {
				if r.stateOf(s) == slots.Good {
					if err := transition(r, s, slots.Fail); err != nil {
						return err
					}
					r.slot(s).Reason = reason
				}
			}
			r.Primary = hw.SlotF
			r.Last = &Result{Code: FellBack, Version: r.slot(hw.SlotF).Version, Slot: hw.SlotF, Reason: reason}
			if err := a.commit(r); err != nil {
				return err
			}
		default:
			// Booted a set the journal does not know as good: the boot
			// control disagrees with the journal. Put it right and
			// restart into a good set.
			a.log.Warn("booted a set that is not good", slog.String("booted", string(booted)), slog.String("state", string(r.stateOf(booted))))
			if err := a.storeBoot(a.goodOrder(r)); err != nil {
				return err
			}
			return a.reboot()
		}
	}
	if err := a.storeBoot(a.goodOrder(a.rec)); err != nil {
		return err
	}
	a.cleanStore()
	return nil
}

// reboot restarts the node. Any return is an error (hw.ErrRebooted on
// the sim board).
func (a *Agent) reboot() error {
	err := a.b.Reboot()
	if err == nil {
		err = errors.New("agent: reboot returned")
	}
	return err
}
