package agent

import (
	"context"
	"errors"
	"fmt"

	"meterupd/boards/hw"
	"meterupd/boards/modem"
	"meterupd/slots"
	"meterupd/validate"
)

// Activate reboots into an installed set (an update installed without
// activation). On the sim board it returns hw.ErrRebooted.
func (a *Agent) Activate(ctx context.Context) error {
	u := a.rec.Update
	if u == nil || u.Phase != Installed {
		return fmt.Errorf("%w: no installed set is waiting for activation", ErrNothing)
	}
	r := a.rec.clone()
	r.Update.Activate = true
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

// Status is the node's state as reported on the console and to the
// head-end.
type Status struct {
	Board   string        `json:"board"`
	Booted  hw.Slot       `json:"booted"`
	Primary hw.Slot       `json:"primary"`
	Slots   []SlotStatus  `json:"slots"`
	Boot    hw.BootState  `json:"boot_control"`
	Update  *UpdateStatus `json:"update,omitempty"`
	Last    *Result       `json:"last_result,omitempty"`
	// Checks are the validation outcomes of the update in progress, or
	// of the last one.
	Checks  []validate.Result `json:"checks,omitempty"`
	Floor   uint64            `json:"sequence_floor"`
	Radio   *RadioStatus      `json:"radio,omitempty"`
	Journal JournalStatus     `json:"journal"`
}

// SlotStatus is one slot's line in the status table.
type SlotStatus struct {
	Slot    hw.Slot     `json:"slot"`
	Role    slots.Role  `json:"role"`
	State   slots.State `json:"state"`
	Version string      `json:"version,omitempty"`
	SHA256  string      `json:"sha256,omitempty"`
	Reason  string      `json:"reason,omitempty"`
}

// UpdateStatus is the update in progress.
type UpdateStatus struct {
	ID       string  `json:"id"`
	Phase    Phase   `json:"phase"`
	Target   hw.Slot `json:"target"`
	From     hw.Slot `json:"from"`
	Version  string  `json:"version"`
	Written  int64   `json:"written"`
	Size     int64   `json:"size"`
	Progress float64 `json:"progress"` // 0..1 of the slot written
	Reason   string  `json:"reason,omitempty"`
}

// JournalStatus tells where the journal is.
type JournalStatus struct {
	Seq     uint64 `json:"seq"`
	Erases  int64  `json:"erases"`
	Commits int64  `json:"commits"`
}

// RadioStatus is the modem as status reports it.
type RadioStatus struct {
	Modem *modem.Status `json:"modem,omitempty"`
	Error string        `json:"error,omitempty"` // why it did not answer
}

// radioStatus asks the board's modem, if it has one.
func (a *Agent) radioStatus(ctx context.Context) *RadioStatus {
	mb, ok := a.b.(ModemBoard)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, radioTimeout)
	defer cancel()
	m, err := mb.Modem(ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return &RadioStatus{Error: err.Error()}
	}
	defer m.Close()
	st, err := m.Status(ctx)
	if err != nil {
		return &RadioStatus{Error: err.Error()}
	}
	return &RadioStatus{Modem: &st}
}

// Status reports the node's state, the radio included. It changes nothing.
func (a *Agent) Status(ctx context.Context) (Status, error) {
	r := a.rec
	booted, err := a.booted()
	if err != nil {
		return Status{}, err
	}
	st := Status{Board: a.b.Name(), Booted: booted, Primary: r.Primary, Last: r.Last, Floor: r.Floor}
	if r.Last != nil {
		st.Checks = r.Last.Checks
	}
	if r.Update != nil && r.Update.Checks != nil {
		st.Checks = r.Update.Checks
	}
	if bs, err := a.b.Boot().Load(); err == nil {
		st.Boot = bs
	}
	for _, s := range []hw.Slot{hw.SlotA, hw.SlotB, hw.SlotF} {
		si := r.Slots[s]
		if si == nil {
			si = &SlotInfo{State: slots.Empty}
		}
		st.Slots = append(st.Slots, SlotStatus{Slot: s, Role: slots.RoleOf(s, booted), State: si.State, Version: si.Version, SHA256: si.SHA256, Reason: si.Reason})
	}
	if u := r.Update; u != nil {
		us := &UpdateStatus{ID: u.ID, Phase: u.Phase, Target: u.Target, From: u.From, Version: u.Item.Version, Written: u.Written, Size: u.Item.Size, Reason: u.Reason}
		if u.Item.Size > 0 {
			us.Progress = float64(u.Written) / float64(u.Item.Size)
		}
		if u.Phase != Downloaded && u.Phase != Installing {
			us.Progress = 1
		}
		st.Update = us
	}
	st.Radio = a.radioStatus(ctx)
	js := a.j.Stats()
	st.Journal = JournalStatus{Seq: a.j.Seq(), Erases: js.Erases, Commits: js.Commits}
	return st, nil
}
