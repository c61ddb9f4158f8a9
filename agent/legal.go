package agent

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"meterupd/audit"
	"meterupd/boards/hw"
)

// The legal audit trail (issue 13): the agent appends a record to the
// hash-chained log on the board's `audit` partition (package audit) at
// every legally relevant event of an update — package verified,
// activated, forced (a veto overridden or the deferral expired), key
// change, committed, rolled back, fell back, common data restored — with
// the software identities and digests before and after, the origin (the
// job id) and the time with its validity.
//
// The log is never overwritten: an update is accepted only when the log
// has room for every record it may need (auditReserve); otherwise it is
// refused with ErrAuditFull and nothing changes. A record is appended
// before the journal commit of the state change it records, and an
// append is skipped when the newest records already hold it (same kind,
// job and identity after): after a power cut between the two, the step
// is redone without a second record.

// ErrAuditFull: the legal log has no room for the records of another
// update; legally relevant updates are refused rather than the log
// overwritten.
var ErrAuditFull = errors.New("agent: the legal audit log is full: legally relevant updates are refused")

// auditReserve is how many records one update may append: verified,
// key change, activated, forced, committed or rolled back, restored,
// fell back, and one spare.
const auditReserve = 8

// legal opens the board's legal log (nil: the board has none).
func (a *Agent) legal() (*audit.Log, error) {
	if a.legalLog != nil {
		return a.legalLog, nil
	}
	f, err := a.b.Partition(hw.PartAudit)
	if err != nil {
		return nil, nil // a board without a legal log
	}
	l, err := audit.Open(f)
	if err != nil {
		return nil, fmt.Errorf("agent: legal audit log: %w", err)
	}
	a.legalLog = l
	return l, nil
}

// checkRequest refuses, before anything changes, a request that cannot
// be acted on: an activation time that cannot be meant, a legal log with
// no room for the update's records.
func (a *Agent) checkRequest(req InstallRequest) error {
	if err := a.checkActivateAt(req.ActivateAt); err != nil {
		return err
	}
	l, err := a.legal()
	if err != nil {
		return err
	}
	if l != nil && l.Remaining() < auditReserve {
		return fmt.Errorf("%w (room for %d more records, an update needs %d)", ErrAuditFull, l.Remaining(), auditReserve)
	}
	return nil
}

// identity is a slot's software identity as the journal knows it.
func identity(r *Record, s hw.Slot) audit.Identity {
	si := r.slot(s)
	d, _ := hex.DecodeString(si.SHA256)
	return audit.Identity{Slot: string(s), Version: si.Version, Digest: d}
}

// itemIdentity is the identity of the update's new set.
func itemIdentity(u *Update) audit.Identity {
	d, _ := hex.DecodeString(u.Item.SHA256)
	return audit.Identity{Slot: string(u.Target), Version: u.Item.Version, Digest: d}
}

// appendLegal appends one legal record for update u (before, after: the
// software identities), unless the newest records hold it already.
func (a *Agent) appendLegal(u *Update, kind audit.Kind, before, after audit.Identity, detail string) error {
	l, err := a.legal()
	if err != nil || l == nil {
		return err
	}
	recs := l.Records()
	for _, old := range recs[max(0, len(recs)-auditReserve):] {
		if old.Kind == kind && old.Origin.ID == u.ID && old.After.Version == after.Version && old.After.Slot == after.Slot {
			return nil // appended before a power cut
		}
	}
	now, cs := a.Clock()
	if len(detail) > audit.MaxText {
		detail = detail[:audit.MaxText]
	}
	origin := audit.Origin{Kind: "job", ID: u.ID}
	if u.Origin != "" {
		// A technician at the console: named, beside the update's id.
		origin.Kind = "technician"
		detail = "by " + u.Origin + "; " + detail
		if len(detail) > audit.MaxText {
			detail = detail[:audit.MaxText]
		}
	}
	rec := audit.Record{Kind: kind, UnixMilli: now.UnixMilli(), ClockValid: cs.Valid,
		Origin: origin, Before: before, After: after, Detail: detail}
	if _, err := l.Append(rec); err != nil {
		a.legalLog = nil // re-read at the next use
		return fmt.Errorf("agent: legal audit log: %w", err)
	}
	a.updateLog(u).Info("legal record appended", slog.String("kind", string(kind)))
	return nil
}

// appendLegalOrLog appends a record of an outcome that must happen
// whatever the log says (a rollback is never held back by its record):
// a failure is logged.
func (a *Agent) appendLegalOrLog(u *Update, kind audit.Kind, before, after audit.Identity, detail string) {
	if err := a.appendLegal(u, kind, before, after, detail); err != nil {
		a.updateLog(u).Error("legal record not appended", slog.String("kind", string(kind)), slog.Any("err", err))
	}
}

// auditActivation records an activation about to be committed: activated,
// forced (how), and a key change the package brings into force.
func (a *Agent) auditActivation(r *Record) error {
	u := r.Update
	before, after := identity(r, u.From), itemIdentity(u)
	detail := fmt.Sprintf("trial of version %s in %s", u.Item.Version, u.Target)
	if err := a.appendLegal(u, audit.KindActivated, before, after, detail); err != nil {
		return err // audit.ErrFull: the caller refuses the activation
	}
	switch {
	case u.Force:
		a.appendLegalOrLog(u, audit.KindForced, before, after, "forced: the registered processes were not asked")
	case u.Expired:
		a.appendLegalOrLog(u, audit.KindForced, before, after, "the deferral by vetoes expired: "+lastVeto(u))
	}
	if u.Keys != nil && string(u.Keys) != string(r.Keys) {
		a.appendLegalOrLog(u, audit.KindKeyChange, before, after, "the package's key update is in force")
	}
	return nil
}

func lastVeto(u *Update) string {
	for _, ans := range u.Answers {
		if ans.Veto {
			return ans.String()
		}
	}
	return "no veto recorded"
}

// auditOutcome records how an activated update ended (an abandoned one,
// never activated, has nothing to record beyond its verification).
func (a *Agent) auditOutcome(r *Record, code ResultCode, running hw.Slot, reason string) {
	u := r.Update
	if u.Phase == Downloaded || u.Phase == Installing || u.Phase == Installed {
		return
	}
	kind := map[ResultCode]audit.Kind{Committed: audit.KindCommitted, RolledBack: audit.KindRolledBack, FellBack: audit.KindFellBack}[code]
	if kind == "" {
		return
	}
	before := itemIdentity(u) // the set rolled back from
	if code == Committed {
		before = identity(r, u.From) // the set it replaced
	}
	a.appendLegalOrLog(u, kind, before, identity(r, running), reason)
}

// Audit returns the legal log's records and the verification of its
// chain, read from flash now (`meterupd audit`). A board without a legal
// log answers ErrNoAuditLog.
func (a *Agent) Audit() (audit.Listing, error) {
	f, err := a.b.Partition(hw.PartAudit)
	if err != nil {
		return audit.Listing{}, fmt.Errorf("%w: %w", ErrNoAuditLog, err)
	}
	l, err := audit.Open(f)
	if err != nil {
		return audit.Listing{}, fmt.Errorf("agent: legal audit log: %w", err)
	}
	return audit.Listing{Records: l.Records(), Verify: l.Verify()}, nil
}

// ErrNoAuditLog: the board has no legal audit log partition.
var ErrNoAuditLog = errors.New("agent: the board has no legal audit log")
