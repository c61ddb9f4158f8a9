package main

import (
	"strings"
	"testing"
	"time"

	"meterupd/agent"
)

// TestDaemonActivatesAtTheScheduledTime: an install with --activate-at
// rests scheduled (status says when); the daemon activates it at that time
// with nobody asking, and the trial is committed.
func TestDaemonActivatesAtTheScheduledTime(t *testing.T) {
	dir := newNode(t)
	daemon(t, dir)
	img, sha := writeImage(t, "2.0.0", 200000)
	at := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
	out := mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0", "--activate-at", at.Format(time.RFC3339))
	if !strings.Contains(out, "activation scheduled at "+at.Format(time.RFC3339)) {
		t.Errorf("install --activate-at:\n%s", out)
	}
	st := status(t, dir)
	if st.State != agent.StateScheduled || st.Update == nil || st.Update.ActivateAt == nil || !st.Update.ActivateAt.Equal(at) {
		t.Fatalf("status after a scheduled install: %+v", st)
	}
	if st.Running.Slot != "A" {
		t.Fatalf("activated before its time: running %s", st.Running.Slot)
	}
	st = waitState(t, dir, agent.StateCommitted)
	if st.Running.Slot != "B" || st.Slots["B"].Version != "2.0.0" {
		t.Fatalf("after the scheduled time: %+v", st)
	}
	if now := time.Now(); now.Before(at) {
		t.Fatalf("committed at %v, before the scheduled %v", now, at)
	}
}

// TestScheduleCommand: schedule moves and cancels; a bad time is refused
// with a clear sentence and changes nothing.
func TestScheduleCommand(t *testing.T) {
	dir := newNode(t)
	img, sha := writeImage(t, "2.0.0", 200000)
	far := time.Now().Add(240 * time.Hour).UTC().Truncate(time.Second)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0", "--activate-at", far.Format(time.RFC3339))
	if _, err := mu(t, dir, "schedule", "tomorrow"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("schedule tomorrow: %v, want a refusal naming RFC 3339", err)
	}
	if st := status(t, dir); st.Update == nil || st.Update.ActivateAt == nil || !st.Update.ActivateAt.Equal(far) {
		t.Fatalf("a refused schedule changed the node: %+v", st.Update)
	}
	later := far.Add(time.Hour)
	if out := mustMU(t, dir, "schedule", later.Format(time.RFC3339)); !strings.Contains(out, "activation scheduled at "+later.Format(time.RFC3339)) {
		t.Errorf("schedule (move):\n%s", out)
	}
	if out := mustMU(t, dir, "schedule", "--cancel"); !strings.Contains(out, "waits for `meterupd activate`") {
		t.Errorf("schedule --cancel:\n%s", out)
	}
	if st := status(t, dir); st.State != agent.StateInstalled || st.Update.ActivateAt != nil {
		t.Fatalf("after cancel: state %q %+v", st.State, st.Update)
	}
	if out := mustMU(t, dir, "status"); !strings.Contains(out, "installed") {
		t.Errorf("status:\n%s", out)
	}
}
