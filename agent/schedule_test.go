package agent_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/clock/clocktest"
)

// schedNode is a provisioned sim node with 2.0.0 ready to install, and a
// fake clock that survives the node's reboots (the RTC).
type schedNode struct {
	t   *testing.T
	dir string
	sha string
	clk *clocktest.Clock
}

var built = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSchedNode(t *testing.T) *schedNode {
	dir := filepath.Join(t.TempDir(), "node")
	sha := newCompatNode(t, dir)
	return &schedNode{t: t, dir: dir, sha: sha, clk: clocktest.New(built.Add(30 * 24 * time.Hour))}
}

// boot is one start of the node: a fresh agent on the board, do, close.
func (n *schedNode) boot(opts []sim.Option, do func(a *agent.Agent, b *sim.Board) error) error {
	n.t.Helper()
	b, err := sim.Open(n.dir, opts...)
	if err != nil {
		n.t.Fatal(err)
	}
	defer b.Close()
	a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(n.dir, "store"), Clock: n.clk, NotBefore: built})
	if err != nil {
		n.t.Fatal(err)
	}
	return do(a, b)
}

func (n *schedNode) install(at time.Time) {
	n.t.Helper()
	err := n.boot(nil, func(a *agent.Agent, _ *sim.Board) error {
		if err := a.Start(context.Background()); err != nil {
			return err
		}
		return a.Install(context.Background(), agent.InstallRequest{Activate: true, ActivateAt: at, Item: agent.InstallItem{
			Kind: agent.FullImage, Version: "2.0.0", SHA256: n.sha, Payloads: []string{filepath.Join(n.dir, "new.img")}}})
	})
	if err != nil {
		n.t.Fatalf("install scheduled at %v: %v", at, err)
	}
}

// start powers the node on (the sim's bootloader) and starts the agent;
// it returns Start's error and the status after it.
func (n *schedNode) start() (agent.Status, error) {
	n.t.Helper()
	powerCycle(n.t, n.dir)
	var st agent.Status
	err := n.boot(nil, func(a *agent.Agent, _ *sim.Board) error {
		err := a.Start(context.Background())
		st, _ = a.Status(context.Background())
		return err
	})
	return st, err
}

func (n *schedNode) status() agent.Status {
	n.t.Helper()
	var st agent.Status
	n.boot(nil, func(a *agent.Agent, _ *sim.Board) error {
		var err error
		st, err = a.Status(context.Background())
		return err
	})
	return st
}

// activate is `meterupd activate`: it reboots into the trial.
func (n *schedNode) activate() {
	n.t.Helper()
	err := n.boot(nil, func(a *agent.Agent, _ *sim.Board) error { return a.Activate(context.Background()) })
	if !errors.Is(err, hw.ErrRebooted) {
		n.t.Fatalf("activate: %v, want a reboot", err)
	}
}

// scheduled is a node with 2.0.0 installed and scheduled an hour ahead.
func scheduled(t *testing.T) (*schedNode, time.Time) {
	n := newSchedNode(t)
	at := n.clk.Now().Add(time.Hour).Truncate(time.Second)
	n.install(at)
	return n, at
}

func wantScheduled(t *testing.T, st agent.Status, at time.Time) {
	t.Helper()
	if st.State != agent.StateScheduled || st.Update == nil || st.Update.ActivateAt == nil || !st.Update.ActivateAt.Equal(at) {
		t.Fatalf("status: state %q update %+v, want scheduled at %v", st.State, st.Update, at)
	}
}

// An installed set scheduled at T waits across power cycles, then
// activates at the first start at or after T.
func TestScheduledActivationAcrossPowerCycles(t *testing.T) {
	n := newSchedNode(t)
	at := n.clk.Now().Add(2 * time.Hour).Truncate(time.Second)
	n.install(at)
	wantScheduled(t, n.status(), at)
	if !strings.Contains(n.status().Reason, at.Format(time.RFC3339)) {
		t.Errorf("reason %q does not name the time", n.status().Reason)
	}

	n.clk.Advance(time.Hour)
	st, err := n.start()
	if err != nil {
		t.Fatalf("start an hour before: %v", err)
	}
	wantScheduled(t, st, at)

	n.clk.Advance(time.Hour)
	_, err = n.start()
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("start at the time: %v, want a reboot into the trial", err)
	}
	if got := powerCycle(t, n.dir); got != hw.SlotB {
		t.Fatalf("after the activation the bootloader started %s, want B", got)
	}
}

// Moved, then cancelled: a cancelled schedule waits for a command.
func TestScheduleMoveCancel(t *testing.T) {
	n, at := scheduled(t)
	ctx := context.Background()
	later := at.Add(24 * time.Hour)
	if err := n.boot(nil, func(a *agent.Agent, _ *sim.Board) error { return a.Schedule(ctx, later) }); err != nil {
		t.Fatalf("move: %v", err)
	}
	wantScheduled(t, n.status(), later)
	n.clk.Advance(2 * time.Hour) // past the first time, before the moved one
	if st, err := n.start(); err != nil || st.State != agent.StateScheduled {
		t.Fatalf("start after the old time: %v, state %q; want still scheduled", err, st.State)
	}
	if err := n.boot(nil, func(a *agent.Agent, _ *sim.Board) error { return a.Schedule(ctx, time.Time{}) }); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	n.clk.Advance(48 * time.Hour)
	st, err := n.start()
	if err != nil || st.State != agent.StateInstalled || st.Update.ActivateAt != nil {
		t.Fatalf("cancelled schedule: %v, state %q %+v; want installed, waiting for a command", err, st.State, st.Update)
	}
	n.activate()
}

// A node whose clock is not valid never activates at a time: it says so
// and waits for a command. A time before the agent's build is refused.
func TestScheduleNeedsAValidClock(t *testing.T) {
	n, at := scheduled(t)
	ctx := context.Background()
	setClock := func(valid bool) {
		b, err := sim.Open(n.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.SetClockValid(valid); err != nil {
			t.Fatal(err)
		}
	}
	setClock(false)
	n.clk.Advance(2 * time.Hour)
	st, err := n.start()
	if err != nil {
		t.Fatalf("start past the time with an invalid clock: %v, want no activation", err)
	}
	wantScheduled(t, st, at)
	if !strings.Contains(st.Reason, "clock is not valid") || !strings.Contains(st.Reason, "waits for a command") {
		t.Errorf("reason %q does not say the clock is not valid and it waits for a command", st.Reason)
	}

	// A valid flag but a clock before the agent's build: not valid.
	setClock(true)
	n.clk.Advance(-n.clk.Now().Sub(built) - time.Hour)
	if st, err := n.start(); err != nil || st.State != agent.StateScheduled || !strings.Contains(st.Reason, "earlier than this agent's build") {
		t.Fatalf("clock before the build: %v, state %q, reason %q", err, st.State, st.Reason)
	}
	// Refused: a time before the build; nothing changes.
	err = n.boot(nil, func(a *agent.Agent, _ *sim.Board) error { return a.Schedule(ctx, built.Add(-time.Hour)) })
	if !errors.Is(err, agent.ErrBadRequest) {
		t.Fatalf("schedule before the build: %v, want ErrBadRequest", err)
	}
	wantScheduled(t, n.status(), at)

	// The command activates whatever the clock.
	n.activate()
}

// A power cut at every flash operation of a move: after recovery the set
// is scheduled at the old time or the new one, never lost, never active.
func TestScheduleMovePowerCut(t *testing.T) {
	n, at := scheduled(t)
	ctx := context.Background()
	later := at.Add(time.Hour)
	base := filepath.Join(t.TempDir(), "base")
	copyDir(t, n.dir, base, nil)
	moved := false
	for k := int64(1); !moved; k++ {
		if k > 64 {
			t.Fatal("the move did not complete within 64 flash operations")
		}
		n.dir = filepath.Join(t.TempDir(), "cut")
		copyDir(t, base, n.dir, nil)
		err := n.boot([]sim.Option{sim.WithFaults(&sim.Faults{CutAt: k, Mode: sim.CutTorn})}, func(a *agent.Agent, _ *sim.Board) error {
			return a.Schedule(ctx, later)
		})
		if err == nil {
			moved = true
			t.Logf("moved at k=%d", k)
		} else if !errors.Is(err, sim.ErrPowerCut) {
			t.Fatalf("cut at %d: %v", k, err)
		}
		st, err := n.start()
		if err != nil {
			t.Fatalf("cut at %d: start: %v", k, err)
		}
		if st.State != agent.StateScheduled || st.Update.ActivateAt == nil ||
			!st.Update.ActivateAt.Equal(at) && !st.Update.ActivateAt.Equal(later) || moved && !st.Update.ActivateAt.Equal(later) {
			t.Fatalf("cut at %d (move done %v): state %q update %+v", k, moved, st.State, st.Update)
		}
	}
}
