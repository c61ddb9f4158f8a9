package node

import (
	"context"
	"fmt"
	"time"

	"meterupd/agent"
	"meterupd/localapi"
)

// Scheduled activation (issue 13): the schedule command, the sentences,
// and the daemon's timer (daemon.go).

// schedule sets, moves or cancels the activation time of the installed
// set.
func (n *Node) schedule(ctx context.Context, req localapi.Request) (any, error) {
	at, err := req.ActivationTime()
	if err != nil {
		return nil, err
	}
	err = n.agent.Schedule(ctx, at)
	msg := "activation time cancelled: the installed set waits for `meterupd activate`"
	if !at.IsZero() {
		msg = "activation scheduled at " + at.Format(time.RFC3339)
		if _, cs := n.agent.Clock(); !cs.Valid {
			msg += "; the clock is not valid (" + cs.Reason + "): the set waits for `meterupd activate` until it is"
		}
	}
	return n.outcome(ctx, msg, nil, refused("schedule", err))
}

// activate activates the installed set now (force: without asking the
// registered processes). A veto defers it: the answer says so.
func (n *Node) activate(ctx context.Context, req localapi.Request) (any, error) {
	var err error
	if req.Force {
		err = n.agent.Force(ctx)
	} else {
		err = n.agent.Activate(ctx)
	}
	msg := "trial armed"
	if u := n.agent.Record().Update; err == nil && u != nil && u.Phase == agent.Installed && u.DeferUntil != 0 {
		msg = u.DeferReason
	}
	return n.outcome(ctx, msg, nil, refused("activate", err))
}

// installedMsg is the sentence of an install that rests installed.
func installedMsg(version string, rec *agent.Record) string {
	u := rec.Update
	if u.DeferUntil != 0 {
		return fmt.Sprintf("installed version %s into slot %s; %s", version, u.Target, u.DeferReason)
	}
	if u.ActivateAt != 0 {
		return fmt.Sprintf("installed version %s into slot %s; activation scheduled at %s", version, u.Target,
			time.Unix(u.ActivateAt, 0).UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("installed version %s into slot %s; activate it with `meterupd activate`", version, u.Target)
}

// clockRecheck is how often the daemon looks again at a node whose clock
// is not valid while an activation is scheduled: the clock may become
// valid (NTP, the head-end) and the time may have come.
const clockRecheck = time.Minute

// nextActivation is how long until the daemon should start the agent
// again for a scheduled activation (ok false: nothing scheduled).
func (n *Node) nextActivation() (time.Duration, bool) {
	if at, ok := n.agent.NextRetry(); ok {
		// Deferred by a veto: ask again at the retry time (the clock
		// that set it).
		now, _ := n.agent.Clock()
		return max(at.Sub(now), 0), true
	}
	at, ok := n.agent.ScheduledAt()
	if !ok {
		return 0, false
	}
	now, cs := n.agent.Clock()
	if !cs.Valid {
		return clockRecheck, true
	}
	return max(at.Sub(now), 0), true
}
