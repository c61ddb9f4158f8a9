package agent_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meterupd/agent"
	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/common"
)

// withCommon opens the node's common partition for do.
func withCommon(t *testing.T, dir string, do func(c *common.Common)) {
	t.Helper()
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f, err := b.Partition(hw.PartCommon)
	if err != nil {
		t.Fatal(err)
	}
	c, err := common.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	do(c)
}

func appendReadings(t *testing.T, c *common.Common, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := c.AppendReading(common.Reading{Interval: i, UnixMilli: int64(i) * 900_000, Wh: int64(i) * 10, Samples: 90}); err != nil {
			t.Fatal(err)
		}
	}
}

// The trial set changes the configuration and takes readings; it is
// rolled back: the configuration is restored from the archive taken
// before the activation, and every reading, the trial's included, is
// still there, once.
func TestRollbackRestoresConfigKeepsReadings(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	sha := newCompatNode(t, dir)
	v1 := common.Settings{Schema: 1, Config: []byte("tariff=T1"), Calibration: []byte("k=1.0002")}
	withCommon(t, dir, func(c *common.Common) {
		if err := c.WriteSettings(v1); err != nil {
			t.Fatal(err)
		}
		appendReadings(t, c, 1, 3)
	})
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
	withCommon(t, dir, func(c *common.Common) {
		a, err := c.Archived()
		if err != nil || a.Settings.Schema != 1 || a.Tag != "A 1.0.0" {
			t.Fatalf("archive before the activation: %+v, %v", a, err)
		}
		// The trial set migrates the settings and meters.
		if err := c.WriteSettings(common.Settings{Schema: 2, Config: []byte("tariff=T1;v2"), Calibration: v1.Calibration}); err != nil {
			t.Fatal(err)
		}
		appendReadings(t, c, 4, 5)
	})
	err = bootSim(t, dir, func(a *agent.Agent) error { return a.Rollback(ctx, "the new set misreads the tariff") })
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("rollback: %v, want a reboot into A", err)
	}
	var last *agent.Result
	if err := bootSim(t, dir, func(a *agent.Agent) error {
		err := a.Start(ctx)
		last = a.Record().Last
		return err
	}); err != nil {
		t.Fatalf("start on A: %v", err)
	}
	if last == nil || last.Code != agent.RolledBack {
		t.Fatalf("last result %+v, want rolled back", last)
	}
	withCommon(t, dir, func(c *common.Common) {
		got, err := c.Settings()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v1, got); diff != "" {
			t.Errorf("settings after the rollback (-want +got):\n%s", diff)
		}
		var intervals []uint64
		for _, r := range c.Readings() {
			intervals = append(intervals, r.Interval)
		}
		if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5}, intervals); diff != "" {
			t.Errorf("readings after the rollback (-want +got):\n%s", diff)
		}
	})
	var kinds []audit.Kind
	if err := bootSim(t, dir, func(a *agent.Agent) error {
		l, err := a.Audit()
		for _, r := range l.Records {
			kinds = append(kinds, r.Kind)
		}
		if !l.Verify.OK() {
			t.Errorf("audit chain: %s", audit.Verdict(l.Verify))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]audit.Kind{audit.KindActivated, audit.KindRestored, audit.KindRolledBack}, kinds); diff != "" {
		t.Errorf("legal records (-want +got):\n%s", diff)
	}
}

// A legal log without room for an update's records refuses the update
// before anything changes; it is never overwritten.
func TestFullAuditLogRefusesUpdates(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	sha := newCompatNode(t, dir)
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := b.Partition(hw.PartAudit)
	l, err := audit.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	for l.Remaining() >= 8 {
		if _, err := l.Append(audit.Record{Kind: audit.KindTechnicianLogin, Origin: audit.Origin{Kind: "technician", ID: "t1"}}); err != nil {
			t.Fatal(err)
		}
	}
	before := l.Verify()
	b.Close()
	var seq uint64
	err = bootSim(t, dir, func(a *agent.Agent) error {
		if err := a.Start(ctx); err != nil {
			return err
		}
		seq = a.Journal().Seq()
		err := a.Install(ctx, agent.InstallRequest{Activate: true, Item: agent.InstallItem{
			Kind: agent.FullImage, Version: "2.0.0", SHA256: sha, Payloads: []string{filepath.Join(dir, "new.img")}}})
		if a.Journal().Seq() != seq {
			t.Errorf("the refused install committed journal records (%d → %d)", seq, a.Journal().Seq())
		}
		return err
	})
	if !errors.Is(err, agent.ErrAuditFull) {
		t.Fatalf("install with a full legal log: %v, want ErrAuditFull", err)
	}
	b, err = sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f, _ = b.Partition(hw.PartAudit)
	if rep, err := audit.VerifyFlash(f); err != nil || rep.HeadSeq != before.HeadSeq || !bytes.Equal(rep.HeadHash, before.HeadHash) {
		t.Errorf("the legal log changed: %+v (%v), was %+v", rep, err, before)
	}
}
