package common

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/internal/flashrec"
)

var (
	s1 = Settings{Schema: 1, Config: []byte(`{"tariff":"T2","period_s":900}`), Calibration: []byte{0x01, 0x02, 0x7F, 0x33}}
	s2 = Settings{Schema: 2, Config: []byte(`{"tariffs":["T2"],"period_s":900,"new":true}`), Calibration: []byte{0x01, 0x02, 0x7F, 0x33}}
)

func geometry() sim.Geometry {
	return sim.Geometry{EraseSize: 4096, WriteSize: 16, SlotSize: 64 << 10, JournalSize: 16 << 10, CommonSize: 64 << 10, Attempts: 3}
}

func node(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if err := sim.Create(dir, geometry()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openCommon opens the node (with faults, if any) and its common data.
func openCommon(t *testing.T, dir string, fa *sim.Faults) (*sim.Board, *Common) {
	t.Helper()
	var opts []sim.Option
	if fa != nil {
		opts = append(opts, sim.WithFaults(fa))
	}
	b, err := sim.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f, _ := b.Partition(hw.PartCommon)
	c, err := Open(f)
	if err != nil {
		t.Fatalf("common.Open: %v", err)
	}
	return b, c
}

func same(a, b Settings) bool { return a.Digest() == b.Digest() }

func appendReadings(t *testing.T, c *Common, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := c.AppendReading(Reading{Interval: uint64(i), UnixMilli: int64(i) * 900_000, Wh: int64(i) * 250, Samples: 100}); err != nil {
			t.Fatalf("AppendReading(%d): %v", i, err)
		}
	}
}

// checkReadings: intervals 1..n each exactly once, in order.
func checkReadings(t *testing.T, c *Common, n int, what string) {
	t.Helper()
	got := c.Readings()
	if len(got) != n {
		t.Fatalf("%s: %d readings, want %d", what, len(got), n)
	}
	for i, r := range got {
		if r.Interval != uint64(i+1) {
			t.Fatalf("%s: reading %d is interval %d, want %d (lost or doubled)", what, i, r.Interval, i+1)
		}
	}
}

func TestArchiveRestoreKeepsReadings(t *testing.T) {
	dir := node(t)
	b, c := openCommon(t, dir, nil)
	if _, err := c.Settings(); !errors.Is(err, ErrNoSettings) {
		t.Errorf("Settings() on a new node = %v, want ErrNoSettings", err)
	}
	if _, err := c.Restore(); !errors.Is(err, ErrNoArchive) {
		t.Errorf("Restore() without archive = %v, want ErrNoArchive", err)
	}
	if err := c.WriteSettings(s1); err != nil {
		t.Fatal(err)
	}
	appendReadings(t, c, 1, 5)
	a, err := c.Archive("A/1.4.2")
	if err != nil {
		t.Fatal(err)
	}
	ops := b.Ops()
	if a2, err := c.Archive("A/1.4.2"); err != nil || !bytes.Equal(a2.Digest, a.Digest) || b.Ops() != ops {
		t.Errorf("second Archive: %v, %d flash ops, want no write", err, b.Ops()-ops)
	}
	// The trial set migrates the configuration and meters on.
	if err := c.WriteSettings(s2); err != nil {
		t.Fatal(err)
	}
	appendReadings(t, c, 6, 10)
	// Rollback.
	if wrote, err := c.Restore(); err != nil || !wrote {
		t.Fatalf("Restore() = %v, %v; want true, nil", wrote, err)
	}
	ops = b.Ops()
	if wrote, err := c.Restore(); err != nil || wrote || b.Ops() != ops {
		t.Errorf("second Restore() = %v, %v, %d ops; want no write", wrote, err, b.Ops()-ops)
	}
	b.Close()
	_, c = openCommon(t, dir, nil)
	got, err := c.Settings()
	if err != nil || !same(got, s1) {
		t.Errorf("after restore and reopen Settings() = %+v, %v; want %+v", got, err, s1)
	}
	checkReadings(t, c, 10, "after restore")
}

func TestRestoreRefusesCorruptArchive(t *testing.T) {
	m := flashrec.NewMem(64<<10, 4096, 16)
	c, err := Open(m)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteSettings(s1)
	c.Archive("A/1")
	c.WriteSettings(s2)
	// A forger's archive: valid frame, settings that do not match the digest.
	a, _ := c.Archived()
	a.Settings.Calibration = []byte{0xEE}
	p, _ := flashrec.Marshal(a)
	if err := c.archive.Replace(p); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(m.B)
	if _, err := c.Restore(); !errors.Is(err, ErrArchiveCorrupt) {
		t.Fatalf("Restore() = %v, want ErrArchiveCorrupt", err)
	}
	if !bytes.Equal(before, m.B) {
		t.Error("a refused Restore wrote")
	}
}

func TestLayoutTooSmall(t *testing.T) {
	if _, err := Open(flashrec.NewMem(5*4096, 4096, 16)); !errors.Is(err, ErrGeometry) {
		t.Errorf("Open(5 blocks) = %v, want ErrGeometry", err)
	}
}

func TestReadingsRingKeepsNewest(t *testing.T) {
	c, err := Open(flashrec.NewMem(64<<10, 4096, 16))
	if err != nil {
		t.Fatal(err)
	}
	n := int(c.ReadingsCapacity()) * 3
	appendReadings(t, c, 1, n)
	got := c.Readings()
	if int64(len(got)) < c.ReadingsCapacity() || got[len(got)-1].Interval != uint64(n) {
		t.Errorf("kept %d readings ending at %d, want ≥ %d ending at %d", len(got), got[len(got)-1].Interval, c.ReadingsCapacity(), n)
	}
}

// cutEvery runs op on a prepared node once per flash operation it makes,
// cutting the power there in every mode (torn with several seeds), and
// calls check on the reopened node after each cut.
func cutEvery(t *testing.T, prepare func(t *testing.T, c *Common), op func(c *Common) error, check func(t *testing.T, c *Common, what string)) int {
	t.Helper()
	// Count the operation's flash ops on an uncut run.
	dir := node(t)
	_, c := openCommon(t, dir, nil)
	prepare(t, c)
	b, c := openCommon(t, dir, nil)
	if err := op(c); err != nil {
		t.Fatal(err)
	}
	n := b.Ops()
	if n == 0 {
		t.Fatal("operation made no flash operation")
	}
	cuts := 0
	for _, mode := range []sim.CutMode{sim.CutBefore, sim.CutAfter, sim.CutTorn} {
		seeds := 1
		if mode == sim.CutTorn {
			seeds = 8
		}
		for seed := range seeds {
			for k := int64(1); k <= n; k++ {
				dir := node(t)
				b, c := openCommon(t, dir, nil)
				prepare(t, c)
				b.Close()
				b, c = openCommon(t, dir, &sim.Faults{CutAt: k, Mode: mode, Rand: rand.New(rand.NewPCG(uint64(seed), uint64(k)))})
				if err := op(c); !errors.Is(err, sim.ErrPowerCut) {
					t.Fatalf("cut at op %d/%d %v: op = %v, want a power cut", k, n, mode, err)
				}
				b.Close()
				_, c = openCommon(t, dir, nil)
				what := fmt.Sprintf("cut at op %d/%d %v seed %d", k, n, mode, seed)
				check(t, c, what)
				cuts++
			}
		}
	}
	return cuts
}

func TestPowerCutArchive(t *testing.T) {
	prepare := func(t *testing.T, c *Common) {
		c.WriteSettings(s2) // an older archive exists...
		c.Archive("A/0.9")
		c.WriteSettings(s1) // ...and the settings changed since
		appendReadings(t, c, 1, 5)
	}
	op := func(c *Common) error { _, err := c.Archive("A/1.4.2"); return err }
	cuts := cutEvery(t, prepare, op, func(t *testing.T, c *Common, what string) {
		if s, err := c.Settings(); err != nil || !same(s, s1) {
			t.Fatalf("%s: settings %+v, %v; want untouched", what, s, err)
		}
		a, err := c.Archived()
		if err != nil || (a.Tag != "A/0.9" && a.Tag != "A/1.4.2") {
			t.Fatalf("%s: archive %q, %v; want the old or the new one", what, a.Tag, err)
		}
		checkReadings(t, c, 5, what)
		if _, err := c.Archive("A/1.4.2"); err != nil {
			t.Fatalf("%s: Archive again: %v", what, err)
		}
		if a, _ := c.Archived(); a.Tag != "A/1.4.2" || !same(a.Settings, s1) {
			t.Fatalf("%s: archive after rerun = %q", what, a.Tag)
		}
	})
	t.Logf("archive: %d power cuts recovered", cuts)
}

func TestPowerCutRestore(t *testing.T) {
	prepare := func(t *testing.T, c *Common) {
		c.WriteSettings(s1)
		appendReadings(t, c, 1, 5)
		if _, err := c.Archive("A/1.4.2"); err != nil {
			t.Fatal(err)
		}
		c.WriteSettings(s2)
		appendReadings(t, c, 6, 10) // taken under the trial set
	}
	op := func(c *Common) error { _, err := c.Restore(); return err }
	cuts := cutEvery(t, prepare, op, func(t *testing.T, c *Common, what string) {
		s, err := c.Settings()
		if err != nil || (!same(s, s1) && !same(s, s2)) {
			t.Fatalf("%s: settings %+v, %v; want the trial's or the archived", what, s, err)
		}
		checkReadings(t, c, 10, what)
		if _, err := c.Restore(); err != nil {
			t.Fatalf("%s: Restore again: %v", what, err)
		}
		if s, _ := c.Settings(); !same(s, s1) {
			t.Fatalf("%s: settings after rerun not restored", what)
		}
		appendReadings(t, c, 11, 11)
		checkReadings(t, c, 11, what+" then one more reading")
	})
	t.Logf("restore: %d power cuts recovered", cuts)
}

// TestSizing logs the readings the sim's default common partition retains
// at two program units; docs/metering.md quotes the figures.
func TestSizing(t *testing.T) {
	g := sim.DefaultGeometry()
	for _, ws := range []int64{g.WriteSize, 16} {
		c, err := Open(flashrec.NewMem(g.CommonSize, g.EraseSize, ws))
		if err != nil {
			t.Fatal(err)
		}
		n := c.ReadingsCapacity()
		t.Logf("common sizing: partition=%d erase=%d write_unit=%d readings_retained_at_least=%d", g.CommonSize, g.EraseSize, ws, n)
		if n < 100 {
			t.Errorf("write unit %d: %d readings retained", ws, n)
		}
	}
}
