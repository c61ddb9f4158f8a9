package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/slots"
)

// Start is what the agent does at every start of the node: reconcile the
// slot the bootloader booted with the journal, then drive any update in
// progress to its next resting point. On the sim board a reboot returns
// hw.ErrRebooted: the caller opens a new Agent and calls Start again, as
// the init system of a real node would.
//
// Every start past the install counts in Update.Starts, in the journal
// before anything else: it is the loop guard, and the persisted fact "the
// node has started since the trial was armed" that the activation step
// reads (Starts is reset when activation begins), so the transitions do
// not depend on which command opened the agent.
func (a *Agent) Start(ctx context.Context) error {
	if u := a.rec.Update; u != nil && u.Phase != Downloaded && u.Phase != Installing && u.Phase != Installed {
		r := a.rec.clone()
		r.Update.Starts++
		if err := a.commit(r); err != nil {
			return err
		}
	}
	if c := a.rec.Comp; c != nil && !c.In { // issue 15: a package's components resume
		return a.runComponents(ctx)
	}
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

// step does one phase's work: one switch, one method per phase. Each
// method performs at most one side effect and records the next state in
// the journal before the following side effect; after a power cut, Start
// re-enters here from the journal and the method redoes or skips its side
// effect idempotently (the resume table).
func (a *Agent) step(ctx context.Context) (done bool, err error) {
	r := a.rec.clone()
	if r.Update == nil {
		if c := r.Comp; c != nil && c.In && c.Undo != nil { // issue 15: a module to take back
			return false, a.undoComponents(ctx)
		}
		return true, a.rest(ctx)
	}
	booted, err := a.booted()
	if err != nil {
		return false, err
	}
	switch r.Update.Phase {
	case Downloaded:
		return false, a.stepDownloaded(r)
	case Installing:
		return false, a.stepInstalling(ctx, r)
	case Installed:
		return a.stepInstalled(ctx, r)
	case Activating:
		return false, a.stepActivating(ctx, r, booted)
	case Trial:
		return false, a.stepTrial(ctx, r, booted)
	case RollingBack:
		return false, a.stepRollingBack(ctx, r, booted)
	case FallingBack:
		return false, a.stepFallingBack(r, booted)
	}
	return false, fmt.Errorf("agent: journal holds unknown phase %q", r.Update.Phase)
}

func (a *Agent) updateLog(u *Update) *slog.Logger {
	return a.log.With(slog.String("update", u.ID), slog.String("phase", string(u.Phase)), slog.String("target", string(u.Target)))
}

// stepDownloaded: the payload is in the store; the idle slot becomes
// "updating" in the journal before its first erase.
func (a *Agent) stepDownloaded(r *Record) error {
	u := r.Update
	if err := transition(r, u.Target, slots.Write); err != nil {
		return a.abandon(r, err.Error())
	}
	*r.slot(u.Target) = SlotInfo{State: slots.Updating}
	u.Phase, u.Written, u.Chk = Installing, 0, nil
	a.updateLog(u).Info("installing", slog.String("version", u.Item.Version))
	return a.commit(r)
}

// stepInstalling writes the idle slot from where the journal says.
func (a *Agent) stepInstalling(ctx context.Context, r *Record) error {
	// The slot being written must not be bootable: drop it from the
	// boot order before the first erase (idempotent on resume).
	if err := a.storeBoot(a.goodOrder(r)); err != nil {
		return err
	}
	return a.install(ctx, r)
}

// stepInstalled waits for activation, or begins it: the package is
// consumed and the activation's start count begins at zero.
func (a *Agent) stepInstalled(ctx context.Context, r *Record) (done bool, err error) {
	u := r.Update
	if !u.Activate && !a.due(u) {
		return true, nil // waits for its time, or for `meterupd activate`
	}
	if ok, err := a.cleared(ctx, r); !ok || err != nil {
		return true, err // deferred by a veto: asked again at the retry time
	}
	tag, err := a.archiveCommon(r)
	if err != nil {
		return false, err
	}
	u.Archived = tag
	if err := a.auditActivation(r); errors.Is(err, audit.ErrFull) {
		return false, a.abandon(r, "the legal audit log is full: the activation is refused")
	} else if err != nil {
		return false, err
	}
	if err := transition(r, u.Target, slots.Arm); err != nil {
		return false, a.abandon(r, err.Error())
	}
	u.Phase, u.Starts = Activating, 0
	// The package is consumed once its set is activated: from now a
	// replay of it is refused, and its key updates are in force.
	r.Floor = max(r.Floor, u.Seq)
	if u.Keys != nil {
		r.Keys = u.Keys
	}
	switch {
	case u.Force:
		a.updateLog(u).Warn("activating: forced, nobody asked")
	case u.Expired:
		a.updateLog(u).Warn("activating: the deferral expired")
	default:
		a.updateLog(u).Info("activating")
	}
	return false, a.commit(r)
}

// stepActivating arms the trial in one boot-control write and reboots
// into it; after the reboot it sees the trial running, or the bootloader
// back on another set with the trial's attempts spent.
func (a *Agent) stepActivating(ctx context.Context, r *Record, booted hw.Slot) error {
	u := r.Update
	if booted == u.Target {
		u.Phase = Trial
		return a.commit(r)
	}
	if u.Starts > a.opt.MaxStarts {
		return a.reject(r, fmt.Sprintf("activation did not complete after %d starts", u.Starts))
	}
	cur, err := a.b.Boot().Load()
	armed := err == nil && len(cur.Order) > 0 && cur.Order[0] == u.Target
	if armed && cur.Left[u.Target] <= 0 && u.Starts > 0 {
		// The node started since the trial was armed, the bootloader
		// spent every attempt on the new set and went back: it did not
		// boot.
		return a.reject(r, fmt.Sprintf("the new set in %s did not boot: the bootloader's %d attempts ran out and it started %s", u.Target, a.opt.Attempts, booted))
	}
	if !armed {
		// Safe state: the registered processes close and flush first.
		a.safeState(ctx, u)
		// Arm the trial: one boot-control write.
		if err := a.storeBoot(a.trialOrder(r)); err != nil {
			return err
		}
		a.updateLog(u).Info("trial armed, rebooting")
	}
	return a.reboot()
}

// trialOrder is the boot state that arms the trial: the target first
// with every attempt, then the good sets.
func (a *Agent) trialOrder(r *Record) hw.BootState {
	bs := a.goodOrder(r)
	bs.Order = append([]hw.Slot{r.Update.Target}, bs.Order...)
	bs.Left[r.Update.Target] = a.opt.Attempts
	return bs
}

// stepTrial decides the trial: health checks pass → commit, else reject.
func (a *Agent) stepTrial(ctx context.Context, r *Record, booted hw.Slot) error {
	u := r.Update
	if booted == hw.SlotF {
		lost, err := a.bootLost(r)
		if err != nil {
			return err
		}
		if lost {
			// Not the trial's fault: re-arm it (Starts still bounds it).
			return a.repairBoot(r, a.trialOrder(r))
		}
	}
	if booted != u.Target {
		return a.reject(r, fmt.Sprintf("the new set in %s stopped booting: the bootloader started %s", u.Target, booted))
	}
	if u.Starts > a.opt.Attempts+1 {
		return a.reject(r, fmt.Sprintf("the new set booted %d times without passing its health checks", u.Starts))
	}
	err := a.trialHealth(ctx, u.Target, a.trialInfo(r))
	if errors.Is(err, ErrNoVerdict) || errors.Is(err, context.Canceled) {
		// No verdict: nothing is decided. The start is counted; the
		// reboot spends one of the bootloader's attempts, and a trial
		// that never reaches a verdict runs out of them (or of starts)
		// and is rolled back.
		a.updateLog(u).Warn("no verdict on the trial, rebooting", slog.Any("err", err))
		if errors.Is(err, context.Canceled) {
			return err
		}
		return a.reboot()
	}
	if err != nil {
		return a.reject(r, "health check failed on the new set: "+err.Error())
	}
	return a.commitTrial(r)
}

// stepRollingBack returns to the previous set and checks its health; F
// when it does not come back or fails.
func (a *Agent) stepRollingBack(ctx context.Context, r *Record, booted hw.Slot) error {
	u := r.Update
	if booted == hw.SlotF && u.From != hw.SlotF {
		lost, err := a.bootLost(r)
		if err != nil {
			return err
		}
		if lost {
			// F because the boot state was lost, not because the
			// previous set failed to boot: back to it.
			return a.repairBoot(r, a.goodOrder(r))
		}
	}
	if err := a.storeBoot(a.goodOrder(r)); err != nil {
		return err
	}
	switch {
	case booted == u.From:
		if u.From != hw.SlotF {
			if err := a.health(ctx, u.From, *r.slot(u.From), false); err != nil {
				return a.fallBack(r, fmt.Sprintf("%s; then the previous set in %s failed its health check: %v", u.Reason, u.From, err))
			}
		}
		a.updateLog(u).Info("rolled back", slog.String("reason", u.Reason))
		code := RolledBack
		if u.From == hw.SlotF {
			code = FellBack
		}
		return a.finish(r, code, u.From, u.Reason)
	case booted == hw.SlotF:
		return a.fallBack(r, fmt.Sprintf("%s; then the previous set in %s did not boot", u.Reason, u.From))
	case u.Starts > a.opt.MaxStarts:
		return a.fallBack(r, fmt.Sprintf("%s; the node did not return to %s after %d starts", u.Reason, u.From, u.Starts))
	default:
		return a.reboot() // still on the rejected set
	}
}

// stepFallingBack settles on whatever good set (or F) the bootloader
// started once every other set is out of the order.
func (a *Agent) stepFallingBack(r *Record, booted hw.Slot) error {
	u := r.Update
	if err := a.storeBoot(a.goodOrder(r)); err != nil {
		return err
	}
	if booted != hw.SlotF && r.stateOf(booted) != slots.Good {
		return a.reboot()
	}
	a.updateLog(u).Warn("fell back", slog.String("to", string(booted)), slog.String("reason", u.Reason))
	r.Primary = booted
	return a.finish(r, FellBack, booted, u.Reason)
}

// trialInfo is what the trial slot must hold: the item's image.
func (a *Agent) trialInfo(r *Record) SlotInfo {
	it := r.Update.Item
	return SlotInfo{State: slots.Trial, Version: it.Version, SHA256: it.SHA256, Size: it.Size}
}

// finish ends the update in r (if any) with a result: the slot running
// after it and its version, the reason, the update's validation results;
// journal first.
func (a *Agent) finish(r *Record, code ResultCode, running hw.Slot, reason string) error {
	if code == RolledBack || code == FellBack {
		reason += a.restoreCommon(r.Update) // readings are never rolled back
	}
	res := &Result{Code: code, Version: r.slot(running).Version, Slot: running, Reason: reason}
	if u := r.Update; u != nil {
		a.auditOutcome(r, code, running, reason)
		res.ID, res.Checks = u.ID, u.Checks
		res.Forced, res.Expired = u.Force && u.Phase != Installed, u.Expired
		if c := r.Comp; c != nil && c.ID == u.ID { // issue 15: the package's other components
			if code != Committed && needsRevert(c) {
				// The module goes back (step: undoComponents), then
				// the per-item report joins this result. The file items
				// go back now, with the set (idempotent: again then).
				c.Undo = &ComponentUndo{Code: code}
				a.restoreFiles(c)
			} else {
				res.Checks = append(slices.Clip(res.Checks), a.settleComponents(r, code)...)
			}
		}
	}
	r.Last = res
	u := r.Update
	r.Update = nil
	if err := a.commit(r); err != nil {
		return err
	}
	if u != nil && code != Abandoned && u.Phase != Installed {
		a.tellOutcome(u, res) // after the trial: they are told how it ended
	}
	return nil
}

// commitTrial confirms the trial set: journal first, then the boot order
// (in rest).
func (a *Agent) commitTrial(r *Record) error {
	u := r.Update
	if err := transition(r, u.Target, slots.Commit); err != nil {
		return err
	}
	r.Primary = u.Target
	a.log.Info("committed", slog.String("slot", string(u.Target)), slog.String("version", u.Item.Version))
	return a.finish(r, Committed, u.Target, "")
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
// may hold anything), the running set is untouched. The result names the
// set still running and its version, not the abandoned target's.
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
	a.log.Warn("update abandoned", slog.String("reason", reason))
	return a.finish(r, Abandoned, u.From, reason)
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
			if err := a.finish(r, RolledBack, booted, reason); err != nil {
				return err
			}
		case booted == hw.SlotF:
			return a.restOnF(r)
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
	if a.rec.BootRepairs != 0 {
		r := a.rec.clone()
		r.BootRepairs = 0 // the primary runs: the boot state is whole again
		if err := a.commit(r); err != nil {
			return err
		}
	}
	if err := a.storeBoot(a.goodOrder(a.rec)); err != nil {
		return err
	}
	a.cleanStore()
	return nil
}

// restOnF reconciles a node that booted F while its primary is A or B.
// Only a set the boot state shows the bootloader tried (in the order, its
// attempts spent) is evidence; see bootTries.
func (a *Agent) restOnF(r *Record) error {
	tried, lost, err := a.bootTries(r)
	if err != nil {
		return err
	}
	if lost {
		return a.repairBoot(r, a.goodOrder(r))
	}
	reason := fmt.Sprintf("%s did not boot and no other good set did: the bootloader started the factory set F", r.Primary)
	for _, s := range tried {
		if err := transition(r, s, slots.Fail); err != nil {
			return err
		}
		r.slot(s).Reason = reason
	}
	if r.stateOf(hw.SlotA) == slots.Good || r.stateOf(hw.SlotB) == slots.Good {
		// A good set the bootloader did not try is still good: put it
		// in the order and start it.
		if err := a.commit(r); err != nil {
			return err
		}
		return a.repairBoot(r, a.goodOrder(r))
	}
	r.Primary = hw.SlotF
	if err := a.finish(r, FellBack, hw.SlotF, reason); err != nil {
		return err
	}
	if err := a.storeBoot(a.goodOrder(a.rec)); err != nil {
		return err
	}
	a.cleanStore()
	return nil
}

// bootTries reads the boot state the bootloader left and returns the
// sets it shows tried and given up on (in the order, no attempts left),
// among the journal's good sets and the armed trial. A boot state that
// cannot be read (hw.ErrBootStateLost: both copies of the boot record
// corrupt) or an order with no set tried (U-Boot's default environment has
// no order at all) is lost: a boot into F then says nothing about any set.
func (a *Agent) bootTries(r *Record) (tried []hw.Slot, lost bool, err error) {
	bs, err := a.b.Boot().Load()
	if errors.Is(err, hw.ErrBootStateLost) {
		a.log.Warn("boot state lost: the bootloader started F without an order", slog.Any("err", err))
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("agent: boot control: %w", err)
	}
	for _, s := range bs.Order {
		if s == hw.SlotF || bs.Left[s] > 0 {
			continue
		}
		if st := r.stateOf(s); st == slots.Good || st == slots.Trial {
			tried = append(tried, s)
		}
	}
	return tried, len(tried) == 0, nil
}

// bootLost reports whether the boot state is lost (see bootTries).
func (a *Agent) bootLost(r *Record) (bool, error) {
	_, lost, err := a.bootTries(r)
	return lost, err
}

// maxBootRepairs bounds repairBoot's reboots: a boot state that reads
// lost again after this many rewrites is not repaired by rewriting it,
// and the node stays on F (every good set still good in the journal).
const maxBootRepairs = 3

// repairBoot rewrites the boot order from the journal (bs: the good sets,
// primary first, or the armed trial) and reboots into it. The count of repairs is a journal
// fact (Record.BootRepairs) written before each reboot and cleared at
// rest on the primary, so a boot control that never keeps what it is
// given cannot make the node reboot forever.
func (a *Agent) repairBoot(r *Record, bs hw.BootState) error {
	if r.BootRepairs >= maxBootRepairs {
		a.log.Error("boot state not repaired: staying on the factory set F", slog.Int("repairs", r.BootRepairs))
		return nil
	}
	r.BootRepairs++
	if err := a.commit(r); err != nil {
		return err
	}
	if err := a.storeBoot(bs); err != nil {
		a.log.Error("boot state cannot be rewritten: staying on the factory set F", slog.Any("err", err))
		return nil
	}
	a.log.Warn("boot order rewritten from the journal, rebooting", slog.String("primary", string(r.Primary)), slog.Int("repairs", r.BootRepairs))
	return a.reboot()
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
