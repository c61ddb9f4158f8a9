package agent

import (
	"context"
	"fmt"

	"meterupd/boards/hw"
	"meterupd/slots"
)

// Activate reboots into an installed set (an update installed without
// activation). On the sim board it returns hw.ErrRebooted.
func (a *Agent) Activate(ctx context.Context) error {
	u := a.rec.Update
	if u == nil || u.Phase != Installed {
		return fmt.Errorf("%w: no installed set is waiting for activation", ErrNothing)
	}
	r := a.rec.clone()
	// Now: a schedule is overridden, and a deferred activation asks the
	// registered processes again at once.
	r.Update.Activate, r.Update.ActivateAt, r.Update.DeferUntil = true, 0, 0
	if err := a.commit(r); err != nil {
		return err
	}
	return a.drive(ctx)
}

// Rollback goes back to the previous set, by the technician's or the
// head-end's decision: an update not yet activated is cancelled; a trial
// is rejected; a confirmed set is left for the other good set. With no
// good set to go back to it refuses and changes nothing.
func (a *Agent) Rollback(ctx context.Context, reason string) error {
	if reason == "" {
		reason = "rolled back on request"
	}
	r := a.rec.clone()
	if u := r.Update; u != nil {
		switch u.Phase {
		case Downloaded, Installing, Installed:
			if err := a.abandon(r, "cancelled: "+reason); err != nil {
				return err
			}
			return a.drive(ctx)
		case Activating, Trial:
			if err := a.reject(r, reason); err != nil {
				return err
			}
			return a.drive(ctx)
		default:
			return fmt.Errorf("%w (%s): a rollback is already under way", ErrBusy, u.Phase)
		}
	}
	booted, err := a.booted()
	if err != nil {
		return err
	}
	if booted == hw.SlotF {
		return fmt.Errorf("%w: the node runs the factory set F", ErrNoPrevious)
	}
	prev := slots.Other(booted)
	if r.stateOf(prev) != slots.Good {
		return fmt.Errorf("%w: slot %s is %s", ErrNoPrevious, prev, r.stateOf(prev))
	}
	// Treat the running set as a rejected trial: the same path, the same
	// health check of the set we return to, and F if that fails.
	if err := transition(r, booted, slots.Fail); err != nil {
		return err
	}
	r.slot(booted).Reason = reason
	si := *r.slot(booted)
	r.Update = &Update{ID: "rollback", Phase: RollingBack, Target: booted, From: prev, Reason: reason,
		Item: InstallItem{Kind: FullImage, Version: si.Version, SHA256: si.SHA256, Size: si.Size}}
	r.Primary = prev
	if err := a.commit(r); err != nil {
		return err
	}
	return a.drive(ctx)
}

// Commit confirms the running trial now, after its health checks pass.
func (a *Agent) Commit(ctx context.Context) error {
	if err := a.checkTrial(ctx); err != nil {
		return err
	}
	if err := a.commitTrial(a.rec.clone()); err != nil {
		return err
	}
	return a.drive(ctx)
}

// checkTrial checks that a trial may be committed now: a set is on trial,
// it runs, and it passes its health checks. It changes nothing.
func (a *Agent) checkTrial(ctx context.Context) error {
	u := a.rec.Update
	if u == nil || (u.Phase != Trial && u.Phase != Activating) {
		return fmt.Errorf("%w: no set is on trial", ErrNoTrial)
	}
	booted, err := a.booted()
	if err != nil {
		return err
	}
	if booted != u.Target {
		return fmt.Errorf("%w: the trial set %s is not running (the node runs %s)", ErrNoTrial, u.Target, booted)
	}
	if err := a.health(ctx, u.Target, a.trialInfo(a.rec), true); err != nil {
		return fmt.Errorf("agent: not committed: health check failed: %w", err)
	}
	return nil
}
