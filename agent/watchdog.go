package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"meterupd/boards/hw"
)

// ErrNoVerdict: the trial's health checks did not come to a verdict
// within Options.TrialTimeout (a check hangs). The agent reboots and the
// bootloader's attempts decide; it never commits a set it could not check.
var ErrNoVerdict = errors.New("agent: the trial reached no verdict in time")

// trialHealth runs the trial's health checks under the trial's deadline:
// while they run, the deadline is what KeepWatchdog reads (past it, the
// watchdog is no longer fed), and when it passes first trialHealth stops
// waiting and returns ErrNoVerdict. A check that ignores its context is
// left behind: the node reboots.
func (a *Agent) trialHealth(ctx context.Context, s hw.Slot, want SlotInfo) error {
	timeout := a.opt.TrialTimeout
	due := a.clk.Now().Add(timeout)
	// Cleared only by a verdict: once overdue, the agent stays unhealthy
	// for the rest of this start, even if its own reboot fails.
	a.verdictDue.Store(due.UnixNano())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	verdict := make(chan error, 1)
	go func() { verdict <- a.health(ctx, s, want, true) }()
	t := a.clk.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-verdict:
		a.verdictDue.Store(0)
		return err
	case <-t.C():
		return fmt.Errorf("%w: health checks still running after %v", ErrNoVerdict, timeout)
	case <-ctx.Done():
		a.verdictDue.Store(0)
		return ctx.Err()
	}
}

// overdue reports whether a trial's verdict is past its deadline.
func (a *Agent) overdue() bool {
	due := a.verdictDue.Load()
	return due != 0 && a.clk.Now().UnixNano() >= due
}

// KeepWatchdog feeds wd while the agent is healthy, every third of the
// watchdog's timeout, until ctx ends; it returns nil then (the caller
// closes wd). Healthy means: no trial is past its verdict deadline. Once a
// trial is overdue it stops feeding, so that a node whose agent cannot even
// reboot it is reset by the watchdog, and the bootloader's count rolls the
// trial back. It is the one method of Agent safe to call concurrently with
// the others: the daemon runs it in a goroutine it owns.
func (a *Agent) KeepWatchdog(ctx context.Context, wd hw.Watchdog) error {
	to, err := wd.Timeout()
	if err != nil {
		return fmt.Errorf("agent: watchdog: %w", err)
	}
	interval := max(to/3, time.Millisecond)
	starved := false
	for {
		switch {
		case !a.overdue():
			if err := wd.Feed(); err != nil {
				return fmt.Errorf("agent: watchdog: %w", err)
			}
			starved = false
		case !starved:
			a.log.Warn("trial overdue: no longer feeding the watchdog", slog.Duration("timeout", to))
			starved = true
		}
		t := a.clk.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}
