package agent_test

// Defects a hostile test found (issue 9), each replayed on a sim node.

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/slots"
)

// commitToB provisions a node and commits 2.0.0 to B through the agent.
func commitToB(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	sha := newCompatNode(t, dir)
	err := bootSim(t, dir, func(a *agent.Agent) error {
		if err := a.Start(ctx); err != nil {
			return err
		}
		return a.Install(ctx, agent.InstallRequest{Activate: true, Item: agent.InstallItem{
			Kind: agent.FullImage, Version: "2.0.0", SHA256: sha, Payloads: []string{filepath.Join(dir, "new.img")}}})
	})
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("install: %v, want a reboot into the trial", err)
	}
	if err := bootSim(t, dir, func(a *agent.Agent) error { return a.Start(ctx) }); err != nil {
		t.Fatalf("start on the trial: %v", err)
	}
}

// powerCycle runs the sim's bootloader and returns the slot it started.
func powerCycle(t *testing.T, dir string) hw.Slot {
	t.Helper()
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := b.PowerOn()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Both copies of the boot record corrupt: the bootloader starts F. That is
// no evidence against A or B: the agent rewrites the order from the
// journal and reboots into the primary; both sets stay good.
func TestCorruptBootRecordIsRepaired(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	commitToB(t, dir)
	agent.CorruptSimBootRecord(t, dir)
	if got := powerCycle(t, dir); got != hw.SlotF {
		t.Fatalf("the bootloader started %s on a corrupt boot record, want F", got)
	}
	var starts int
	for {
		starts++
		err := bootSim(t, dir, func(a *agent.Agent) error { return a.Start(ctx) })
		if err == nil {
			break
		}
		if !errors.Is(err, hw.ErrRebooted) || starts > 3 {
			t.Fatalf("start %d: %v", starts, err)
		}
	}
	bootSim(t, dir, func(a *agent.Agent) error {
		r := a.Record()
		st, err := a.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Booted != hw.SlotB || r.Primary != hw.SlotB {
			t.Errorf("booted %s, primary %s: want the primary B running again", st.Booted, r.Primary)
		}
		for _, s := range []hw.Slot{hw.SlotA, hw.SlotB} {
			if si := r.Slots[s]; si.State != slots.Good {
				t.Errorf("slot %s is %s (%s), want good: it was never tried", s, si.State, si.Reason)
			}
		}
		if r.Last == nil || r.Last.Code != agent.Committed {
			t.Errorf("last result %+v, want the update's (committed) untouched", r.Last)
		}
		if r.BootRepairs != 0 {
			t.Errorf("BootRepairs = %d after the primary ran, want 0", r.BootRepairs)
		}
		return nil
	})
}
