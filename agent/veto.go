package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"meterupd/audit"
	"meterupd/boards/hw"
)

// Vetoes (issue 13). Before an activation the agent asks the local
// processes registered to be asked (the metrology process, a billing or
// prepayment process …). Each answers ok, or a veto with a reason code
// from VetoCodes and a retry-after. One veto defers the activation: the
// set stays installed (phase installed; the deferral is a fact beside
// it, like the schedule), status reports `deferred` with the reason, and
// the agent asks again at the retry time. The deferral is bounded:
// Update.MaxDefer (from the request or the package; default
// Options.MaxDefer); once the first veto is that old, the agent activates
// anyway and records that the deferral expired. Force (from the head-end
// or the technician) activates without asking and is recorded as forced.
//
// A process that does not answer within its timeout counts as a veto
// with code no-answer and the default retry-after: the agent never
// switches under a process it could not reach (it may be closing a
// billing period slowly), and max-defer still bounds the wait, so a hung
// process cannot hold an update back for ever.

// VetoCode is why a process vetoes an activation. Stored and on the wire:
// never rename a value.
type VetoCode string

// The veto reason codes (docs/activation.md).
const (
	VetoBillingClose VetoCode = "billing-close"        // a billing period is being closed
	VetoTariffSwitch VetoCode = "tariff-switch"        // a tariff change is being applied
	VetoTamper       VetoCode = "tamper-investigation" // a tamper event is being investigated
	VetoLoadControl  VetoCode = "load-control"         // a load-control action is running
	VetoPrepayment   VetoCode = "prepayment-credit"    // prepayment credit is being settled
	VetoUserDefined  VetoCode = "user-defined"         // the process's own reason (detail says)
	VetoNoAnswer     VetoCode = "no-answer"            // set by the agent: no answer within the timeout
	MaxVetoDetail             = 200                    // bytes of a veto's detail kept
	maxVetoAnswers            = 16                     // answers kept per round
	DefaultVetoRetry          = 5 * time.Minute        // retry-after of an answer that gives none
	DefaultMaxDefer           = 24 * time.Hour         // Options.MaxDefer default
)

// VetoCodes are the codes a process may answer (no-answer is the agent's).
var VetoCodes = []VetoCode{VetoBillingClose, VetoTariffSwitch, VetoTamper, VetoLoadControl, VetoPrepayment, VetoUserDefined}

// ValidVetoCode reports whether a process may answer c.
func ValidVetoCode(c VetoCode) bool {
	for _, v := range VetoCodes {
		if v == c {
			return true
		}
	}
	return false
}

// Question is what the registered processes are asked.
type Question struct {
	Job     string  `json:"job,omitempty"`
	Version string  `json:"version"` // the version to be activated
	Slot    hw.Slot `json:"slot"`    // the slot it is in
}

// Answer is one process's answer. Stored (in the journal, the last round):
// never rename a key.
type Answer struct {
	Process string   `cbor:"p" json:"process"`
	Veto    bool     `cbor:"veto,omitempty" json:"veto"`
	Code    VetoCode `cbor:"code,omitempty" json:"code,omitempty"`
	Detail  string   `cbor:"d,omitempty" json:"detail,omitempty"`
	// RetryAfter is in seconds (0: the default).
	RetryAfter int64 `cbor:"retry,omitempty" json:"retry_after_s,omitempty"`
	// NoAnswer: the process did not answer within its timeout.
	NoAnswer bool `cbor:"none,omitempty" json:"no_answer,omitempty"`
}

// Asker asks the registered processes (the node's registry implements
// it; the agent knows no socket). Ask returns one answer per process
// registered, NoAnswer set for those that did not answer within their
// timeout; it never blocks longer than the longest timeout (or ctx).
type Asker interface {
	Ask(ctx context.Context, q Question) []Answer
}

// Notifier is an Asker that also tells the registered processes about the
// switch (safe state): Prepare just before the reboot into the trial (the
// metrology process closes and flushes its interval; Prepare returns once
// each acknowledged or timed out), Tell the outcome after the trial.
type Notifier interface {
	Prepare(ctx context.Context, q Question)
	Tell(ctx context.Context, q Question, outcome string)
}

// safeState brings the registered processes to a safe state before the
// reboot into the trial (idempotent: after a power cut they are told
// again).
func (a *Agent) safeState(ctx context.Context, u *Update) {
	if n, ok := a.opt.Vetoes.(Notifier); ok {
		a.updateLog(u).Info("telling the registered processes: switching now")
		n.Prepare(ctx, Question{Job: u.ID, Version: u.Item.Version, Slot: u.Target})
	}
}

// tellOutcome tells the registered processes how the switch ended.
func (a *Agent) tellOutcome(u *Update, res *Result) {
	if n, ok := a.opt.Vetoes.(Notifier); ok {
		msg := string(res.Code)
		if res.Reason != "" {
			msg += ": " + res.Reason
		}
		n.Tell(context.Background(), Question{Job: u.ID, Version: u.Item.Version, Slot: u.Target}, msg)
	}
}

func (ans Answer) String() string {
	switch {
	case ans.NoAnswer:
		return fmt.Sprintf("%s did not answer in time (counts as a veto)", ans.Process)
	case !ans.Veto:
		return ans.Process + ": ok"
	}
	s := fmt.Sprintf("%s vetoed: %s", ans.Process, ans.Code)
	if ans.Detail != "" {
		s += " (" + ans.Detail + ")"
	}
	return s
}

// cleared decides whether the activation in r may go on now (journal
// facts in r are updated: forced, expired, the answers). false: deferred
// (the deferral is committed here) or waiting for a retry time.
func (a *Agent) cleared(ctx context.Context, r *Record) (bool, error) {
	u := r.Update
	now := a.clk.Now()
	if u.Force {
		a.opEvent(audit.OpVetoAnswered, "agent", fmt.Sprintf("job %s: activation forced: no process asked", u.ID))
		return true, nil
	}
	if u.DeferUntil != 0 && now.Before(time.Unix(u.DeferUntil, 0)) {
		return false, nil // deferred: asked again at the retry time
	}
	if a.opt.Vetoes == nil {
		return true, nil
	}
	q := Question{Job: u.ID, Version: u.Item.Version, Slot: u.Target}
	a.opEvent(audit.OpVetoAsked, "agent", fmt.Sprintf("job %s: may version %s in %s be activated?", u.ID, q.Version, q.Slot))
	answers := a.opt.Vetoes.Ask(ctx, q)
	if len(answers) > maxVetoAnswers {
		answers = answers[:maxVetoAnswers]
	}
	var veto *Answer
	retry := time.Duration(0)
	for i := range answers {
		ans := &answers[i]
		if len(ans.Detail) > MaxVetoDetail {
			ans.Detail = ans.Detail[:MaxVetoDetail]
		}
		if ans.NoAnswer {
			ans.Veto, ans.Code = true, VetoNoAnswer
		}
		a.opEvent(audit.OpVetoAnswered, ans.Process, ans.String())
		if !ans.Veto {
			continue
		}
		d := time.Duration(ans.RetryAfter) * time.Second
		if d <= 0 {
			d = DefaultVetoRetry
		}
		if veto == nil || d > retry {
			veto, retry = ans, d
		}
	}
	u.Answers = answers
	if veto == nil {
		u.DeferUntil, u.DeferReason = 0, ""
		return true, nil
	}
	since := now
	if u.DeferSince != 0 {
		since = time.Unix(u.DeferSince, 0)
	}
	maxDefer := a.opt.MaxDefer
	if u.MaxDefer > 0 {
		maxDefer = time.Duration(u.MaxDefer) * time.Second
	}
	end := since.Add(maxDefer)
	if !now.Before(end) {
		u.Expired = true
		u.DeferUntil, u.DeferReason = 0, ""
		a.updateLog(u).Warn("deferral expired: activating despite a veto", slog.String("veto", veto.String()), slog.Duration("max_defer", maxDefer))
		return true, nil
	}
	until := now.Add(retry)
	if until.After(end) {
		until = end
	}
	u.DeferSince, u.DeferUntil = since.Unix(), until.Unix()
	u.DeferReason = fmt.Sprintf("activation deferred until %s: %s", until.UTC().Format(time.RFC3339), veto)
	a.updateLog(u).Info("activation deferred", slog.String("veto", veto.String()), slog.Time("until", until.UTC()))
	return false, a.commit(r)
}

// Force activates the installed set now without asking the registered
// processes; the activation is recorded as forced.
func (a *Agent) Force(ctx context.Context) error {
	u := a.rec.Update
	if u == nil || u.Phase != Installed {
		return fmt.Errorf("%w: no installed set is waiting for activation", ErrNothing)
	}
	r := a.rec.clone()
	r.Update.Activate, r.Update.ActivateAt, r.Update.Force = true, 0, true
	if err := a.commit(r); err != nil {
		return err
	}
	return a.drive(ctx)
}

// NextRetry is when a deferred activation is asked again (ok false: none
// deferred).
func (a *Agent) NextRetry() (time.Time, bool) {
	u := a.rec.Update
	if u == nil || u.Phase != Installed || u.DeferUntil == 0 {
		return time.Time{}, false
	}
	return time.Unix(u.DeferUntil, 0).UTC(), true
}

// opEvent appends an operational event to the board's ring, if it has
// one; errors are logged (an update never waits for the ring).
func (a *Agent) opEvent(kind audit.OpKind, who, detail string) {
	f, err := a.b.Partition(hw.PartOpLog)
	if err != nil {
		return
	}
	if a.ops == nil {
		if a.ops, err = audit.OpenOpLog(f); err != nil {
			a.log.Warn("operational log unreadable: event not recorded", slog.Any("err", err))
			return
		}
	}
	if len(detail) > audit.MaxText {
		detail = strings.ToValidUTF8(detail[:audit.MaxText], "")
	}
	_, cs := a.Clock()
	e := audit.Event{Kind: kind, UnixMilli: a.clk.Now().UnixMilli(), ClockValid: cs.Valid, Origin: audit.Origin{Kind: "local", ID: who}, Detail: detail}
	if err := a.ops.Append(e); err != nil {
		a.log.Warn("operational event not recorded", slog.Any("err", err))
	}
}

// OpEvents returns the operational ring's events (nil: the board has none).
func (a *Agent) OpEvents() []audit.Event {
	f, err := a.b.Partition(hw.PartOpLog)
	if err != nil {
		return nil
	}
	o, err := audit.OpenOpLog(f)
	if err != nil {
		return nil
	}
	return o.Events()
}
