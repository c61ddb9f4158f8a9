package agent

import (
	"context"
	"strings"
	"time"

	"meterupd/boards/hw"
	"meterupd/journal"
	"meterupd/manifest"
	"meterupd/slots"
	"meterupd/validate"
)

// Status is the node's state on the wire: what `meterupd status --json`
// prints, what the local API answers and what the head-end link reports.
// It is a wire type, apart from the persisted Record: its JSON names are
// lowercase and stable (docs/status.md); fields are added, never renamed.
// Its first fields are the MQTT `reported` document's (job, state,
// progress, result, reason, running, slots, agent); the rest are details
// for the console and the CLI.
type Status struct {
	// Job is the id of the update in progress, or of the last one.
	Job string `json:"job,omitempty"`
	// State is one of the reported states (StateIdle …).
	State string `json:"state"`
	// Progress counts the bytes of the idle slot written and verified.
	Progress *Progress `json:"progress,omitempty"`
	// Result is the last update's result code (ResultNone …).
	Result int `json:"result"`
	// Reason says, in a sentence, why the update is where it is.
	Reason string `json:"reason,omitempty"`
	// Running is the set that runs now.
	Running Running `json:"running"`
	// Slots are the journal's view of A, B and F.
	Slots map[hw.Slot]SlotStatus `json:"slots"`
	// Agent is the version of this meterupd (set by the node).
	Agent string `json:"agent,omitempty"`

	Board   string        `json:"board"`
	Primary hw.Slot       `json:"primary"`
	Boot    hw.BootState  `json:"boot"`
	Update  *UpdateStatus `json:"update,omitempty"`
	Last    *LastResult   `json:"last,omitempty"`
	// Checks are the validation outcomes of the update in progress, or of
	// the last one.
	Checks  []validate.Result `json:"checks,omitempty"`
	Floor   uint64            `json:"sequence_floor"`
	Radio   *hw.RadioStatus   `json:"radio,omitempty"`
	Journal JournalStatus     `json:"journal"`
	// Problems are configuration problems the node runs with (set by the
	// node): a damaged keys.pem or identity.json degrades the node, it
	// does not stop it.
	Problems []string `json:"problems,omitempty"`
	// Issue 15. Components are the versions of the node's other
	// components as the journal knows them ("modem": the radio module's
	// firmware as it last reported it, "file": the last committed file
	// items'); Pending are the modem firmware and file items of the
	// package being installed, and where each stands.
	Components map[string]string `json:"components,omitempty"`
	Pending    []PendingItem     `json:"pending,omitempty"`
}

// PendingItem is a modem firmware or file item of the package being
// installed. Step is the radio module's update phase (hw.ModemPhase;
// "new" before the first), "done", or "" for a file item not yet written.
type PendingItem struct {
	ID        string `json:"id"`
	Component string `json:"component"`
	Version   string `json:"version"`
	Step      string `json:"step,omitempty"`
}

// The reported states (DESIGN.md, MQTT `reported.state`).
const (
	StateIdle       = "idle"
	StateDownloaded = "downloaded"
	StateInstalling = "installing"
	StateInstalled  = "installed"
	// StateScheduled: installed, its activation scheduled at a time
	// (UpdateStatus.ActivateAt); phase installed in the journal.
	StateScheduled = "scheduled"
	// StateDeferred: installed, its activation deferred by a veto
	// (Status.Reason says which; asked again at UpdateStatus.RetryAt).
	StateDeferred    = "deferred"
	StateActivating  = "activating"
	StateTrial       = "trial"
	StateRollingBack = "rolling-back"
	StateFallingBack = "falling-back"
	StateCommitted   = "committed"
	StateRolledBack  = "rolled-back"
	StateFellBack    = "fell-back"
	StateFailed      = "failed"
)

// Result codes: the LwM2M firmware-update results (object 5, resource 5)
// where they fit, ours from 100.
const (
	ResultNone       = 0   // no update yet, or one in progress
	ResultSuccess    = 1   // committed
	ResultFailed     = 8   // abandoned before activation
	ResultCancelled  = 10  // cancelled on request before activation
	ResultRolledBack = 100 // the new set failed; back on the previous set
	ResultFellBack   = 101 // both sets failed; on the factory set F
)

// Progress is the bytes written of the bytes to write.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// Running is the set that runs.
type Running struct {
	Slot    hw.Slot `json:"slot"`
	Version string  `json:"version,omitempty"`
}

// SlotStatus is one slot as status reports it.
type SlotStatus struct {
	Role    slots.Role  `json:"role"`
	State   slots.State `json:"state"`
	Version string      `json:"version,omitempty"`
	SHA256  string      `json:"sha256,omitempty"`
	Reason  string      `json:"reason,omitempty"`
}

// UpdateStatus is the update in progress.
type UpdateStatus struct {
	Phase    Phase   `json:"phase"`
	Target   hw.Slot `json:"target"`
	From     hw.Slot `json:"from"`
	Version  string  `json:"version"`
	Activate bool    `json:"activate,omitempty"`
	// ActivateAt is the scheduled activation time (UTC), if any.
	ActivateAt *time.Time `json:"activate_at,omitempty"`
	// Deferred by a veto: asked again at RetryAt; Answers are the last
	// round's. Forced / Expired: how the activation went past vetoes.
	RetryAt *time.Time `json:"retry_at,omitempty"`
	Answers []Answer   `json:"answers,omitempty"`
	Forced  bool       `json:"forced,omitempty"`
	Expired bool       `json:"deferral_expired,omitempty"`
}

// LastResult is the last update's outcome.
type LastResult struct {
	Code    ResultCode `json:"code"`
	Job     string     `json:"job,omitempty"`
	Version string     `json:"version,omitempty"`
	Slot    hw.Slot    `json:"slot,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	// Forced / Expired: the activation went past vetoes (issue 13).
	Forced  bool `json:"forced,omitempty"`
	Expired bool `json:"deferral_expired,omitempty"`
}

// JournalStatus tells where the journal is. (The journal's erase and
// commit counters count since it was opened, so they differ between a
// daemon and a command: status does not show them.)
type JournalStatus struct {
	Seq uint64 `json:"seq"`
}

// Status reports the node's state from the last committed record. It does
// no radio I/O (the board's last radio answer is shown) and changes
// nothing.
func (a *Agent) Status(context.Context) (Status, error) {
	booted, err := a.booted()
	if err != nil {
		return Status{}, err
	}
	bs, _ := a.b.Boot().Load()
	st := StatusOf(a.rec, booted, bs)
	if st.State == StateScheduled {
		if _, cs := a.Clock(); !cs.Valid {
			st.Reason += "; the clock is not valid (" + cs.Reason + "): waits for a command (meterupd activate)"
		}
	}
	st.Board = a.b.Name()
	st.Journal = JournalStatus{Seq: a.j.Seq()}
	if v := a.modemVer; v != "" { // issue 15: as the module last told it (no I/O here)
		if st.Components == nil {
			st.Components = map[string]string{}
		}
		st.Components[manifest.ComponentModem.String()] = v
	}
	if r, ok := a.b.(hw.Radio); ok {
		if rs, ok := r.RadioStatus(); ok {
			st.Radio = &rs
		}
	}
	return st, nil
}

// StatusOf derives the wire status from a record, the booted slot and the
// boot state: every report is derived again from the journal.
func StatusOf(r *Record, booted hw.Slot, bs hw.BootState) Status {
	st := Status{State: StateIdle, Primary: r.Primary, Floor: r.Floor, Boot: bs.Clone(), Slots: map[hw.Slot]SlotStatus{}}
	for _, s := range []hw.Slot{hw.SlotA, hw.SlotB, hw.SlotF} {
		si := r.Slots[s]
		if si == nil {
			si = &SlotInfo{State: slots.Empty}
		}
		st.Slots[s] = SlotStatus{Role: slots.RoleOf(s, booted), State: si.State, Version: si.Version, SHA256: si.SHA256, Reason: si.Reason}
	}
	st.Running = Running{Slot: booted, Version: st.Slots[booted].Version}
	if l := r.Last; l != nil {
		st.Last = &LastResult{Code: l.Code, Job: l.ID, Version: l.Version, Slot: l.Slot, Reason: l.Reason, Forced: l.Forced, Expired: l.Expired}
		st.Checks = l.Checks
		st.Job, st.Reason = l.ID, l.Reason
		switch l.Code {
		case Committed:
			st.State, st.Result = StateCommitted, ResultSuccess
		case RolledBack:
			st.State, st.Result = StateRolledBack, ResultRolledBack
		case FellBack:
			st.State, st.Result = StateFellBack, ResultFellBack
		case Abandoned:
			st.State, st.Result = StateFailed, ResultFailed
			if strings.HasPrefix(l.Reason, "cancelled") {
				st.Result = ResultCancelled
			}
		}
	}
	componentStatus(&st, r)
	if u := r.Update; u != nil {
		st.Job, st.Reason, st.Result = u.ID, u.Reason, ResultNone
		st.State = string(u.Phase)
		st.Update = &UpdateStatus{Phase: u.Phase, Target: u.Target, From: u.From, Version: u.Item.Version, Activate: u.Activate}
		if u.ActivateAt != 0 && (u.Phase == Downloaded || u.Phase == Installing || u.Phase == Installed) {
			at := time.Unix(u.ActivateAt, 0).UTC()
			st.Update.ActivateAt = &at
			if u.Phase == Installed {
				st.State = StateScheduled
				if st.Reason == "" {
					st.Reason = "activation scheduled at " + at.Format(time.RFC3339)
				}
			}
		}
		st.Update.Answers, st.Update.Forced, st.Update.Expired = u.Answers, u.Force, u.Expired
		if u.Phase == Installed && u.DeferUntil != 0 {
			at := time.Unix(u.DeferUntil, 0).UTC()
			st.State, st.Update.RetryAt = StateDeferred, &at
			if st.Reason == "" {
				st.Reason = u.DeferReason
			}
		}
		done := u.Written
		if u.Phase != Downloaded && u.Phase != Installing {
			done = u.Item.Size
		}
		st.Progress = &Progress{Done: done, Total: u.Item.Size}
		if u.Checks != nil {
			st.Checks = u.Checks
		}
	}
	return st
}

// HistoryEntry is one journal record, decoded, as `meterupd journal`
// shows it. Record is nil when the record cannot be decoded (Err says
// why).
type HistoryEntry struct {
	Seq    uint64  `json:"seq"`
	Area   int     `json:"area"`
	Offset int64   `json:"offset"`
	Record *Record `json:"record,omitempty"`
	Err    string  `json:"error,omitempty"`
}

// History returns the journal's records, oldest first, decoded.
func (a *Agent) History() ([]HistoryEntry, error) {
	recs, err := a.j.Records()
	if err != nil {
		return nil, err
	}
	out := make([]HistoryEntry, 0, len(recs))
	for _, jr := range recs {
		e := HistoryEntry{Seq: jr.Seq, Area: jr.Area, Offset: jr.Offset}
		var r Record
		if err := journal.Decode(jr.Data, &r); err != nil {
			e.Err = err.Error()
		} else {
			e.Record = &r
		}
		out = append(out, e)
	}
	return out, nil
}

// componentStatus fills in the other components (issue 15): their
// versions, and the items of a package being installed. While those
// install before the system set, the node reports the state installing.
func componentStatus(st *Status, r *Record) {
	if r.ModemVersion != "" || r.FilesVersion != "" {
		st.Components = map[string]string{}
		if r.ModemVersion != "" {
			st.Components[manifest.ComponentModem.String()] = r.ModemVersion
		}
		if r.FilesVersion != "" {
			st.Components[manifest.ComponentFile.String()] = r.FilesVersion
		}
	}
	c := r.Comp
	if c == nil {
		return
	}
	for _, it := range c.Items {
		p := PendingItem{ID: it.ID, Component: it.Component.String(), Version: it.Version}
		switch {
		case it.Done:
			p.Step = "done"
		case it.Modem != nil:
			p.Step = string(it.Modem.Phase)
			if p.Step == "" {
				p.Step = "new"
			}
		}
		if rv := it.Revert; c.Undo != nil && rv != nil { // issue 15: the way back
			switch {
			case rv.Done:
				p.Step = "rolled back"
			case rv.Err != "":
				p.Step = "kept"
			case rv.Step != nil && rv.Step.Phase != "":
				p.Step = "reverting: " + string(rv.Step.Phase)
			default:
				p.Step = "reverting"
			}
		}
		st.Pending = append(st.Pending, p)
	}
	switch {
	case r.Update == nil && c.Undo != nil:
		st.Job, st.State, st.Result = c.ID, StateInstalling, ResultNone
		st.Reason = "the package did not stay: taking the radio module back to its previous firmware"
	case r.Update == nil && !c.In:
		st.Job, st.State, st.Result = c.ID, StateInstalling, ResultNone
		st.Reason = "installing the package's modem firmware and file items"
	}
}
