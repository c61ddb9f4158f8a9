package agent

import (
	"errors"
	"fmt"
	"log/slog"

	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/common"
)

// Common data (issue 13). Before an activation the agent archives what a
// new set may change — configuration, calibration, schema version — in
// the common partition (common.Archive: power-safe, idempotent); when the
// update ends rolled back or fallen back it restores them
// (common.Restore). Readings are a separate ring of the partition and are
// never touched: readings taken under a trial set survive its rollback.
//
// A board without a common partition, a partition that holds no settings
// yet (nothing to archive), or one the common package cannot read (never
// formatted, foreign data) is left alone: the agent never writes a common
// partition it cannot read. A flash error while archiving stops the step
// (it is retried at the next start); a restore that fails is reported in
// the log and the result's reason, and the rollback goes on: the previous
// set runs with the settings it finds, which is better than staying on a
// rejected set.

// openCommon opens the board's common partition (nil: none usable).
func (a *Agent) openCommon() *common.Common {
	f, err := a.b.Partition(hw.PartCommon)
	if err != nil {
		return nil
	}
	c, err := common.Open(f)
	if err != nil {
		a.log.Warn("common partition unreadable: common data left alone", slog.Any("err", err))
		return nil
	}
	return c
}

// archiveCommon archives the settings under the running set's identity
// and returns the tag (empty: nothing archived).
func (a *Agent) archiveCommon(r *Record) (string, error) {
	c := a.openCommon()
	if c == nil {
		return "", nil
	}
	u := r.Update
	tag := fmt.Sprintf("%s %s", u.From, r.slot(u.From).Version)
	arc, err := c.Archive(tag)
	if errors.Is(err, common.ErrNoSettings) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("agent: archive common data: %w", err)
	}
	a.updateLog(u).Info("common data archived", slog.String("tag", tag), slog.Uint64("schema", uint64(arc.Settings.Schema)))
	return tag, nil
}

// restoreCommon restores the archived settings after a rollback or a
// fallback; it returns a sentence to add to the reason when it failed.
func (a *Agent) restoreCommon(u *Update) string {
	if u == nil || u.Archived == "" {
		return ""
	}
	c := a.openCommon()
	if c == nil {
		return "; the common data could not be restored (partition unreadable)"
	}
	wrote, err := c.Restore()
	if err != nil {
		a.updateLog(u).Error("common data not restored", slog.Any("err", err))
		return "; the common data could not be restored: " + err.Error()
	}
	if wrote {
		a.updateLog(u).Info("common data restored", slog.String("tag", u.Archived))
		a.appendLegalOrLog(u, audit.KindRestored, itemIdentity(u), audit.Identity{Slot: string(u.From)},
			"configuration, calibration and schema restored from the archive taken under "+u.Archived+"; readings kept")
	}
	return ""
}
