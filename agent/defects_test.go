package agent_test

// Defects a hostile test found (issue 9), each replayed on a sim node.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/delta"
	"meterupd/internal/realtool"
	"meterupd/manifest"
	"meterupd/slots"
)

// commitToB provisions a node and commits 2.0.0 to B through the agent.
func commitToB(t *testing.T, dir string) {
	t.Helper()
	armTrial(t, dir)
	if err := bootSim(t, dir, func(a *agent.Agent) error { return a.Start(context.Background()) }); err != nil {
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
		if st.Running.Slot != hw.SlotB || r.Primary != hw.SlotB {
			t.Errorf("booted %s, primary %s: want the primary B running again", st.Running.Slot, r.Primary)
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

// An accepted update that ends abandoned is an error wrapping
// ErrAbandoned, and the result names the set still running, not the
// target's version: random bytes as a delta, a delta against the wrong
// base, a chain in the wrong order, a Debian bsdiff patch against the
// wrong base.
func TestAbandonedInstallIsAnError(t *testing.T) {
	const size = 256 << 10
	img := func(v string) []byte { return sim.Image(size, v) }
	nodeDelta := func(from, to string) []byte {
		t.Helper()
		p, err := delta.Diff(img(from), img(to), delta.FormatNode)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	debianBsdiff := func(from, to string) []byte {
		t.Helper()
		bin := realtool.Need(t, "bsdiff", "bsdiff")
		d := t.TempDir()
		o, n, p := filepath.Join(d, "old"), filepath.Join(d, "new"), filepath.Join(d, "patch")
		for f, b := range map[string][]byte{o: img(from), n: img(to)} {
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(bin, o, n, p).CombinedOutput(); err != nil {
			t.Fatalf("bsdiff: %v\n%s", err, out)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name     string
		payloads func() [][]byte
		version  string
	}{
		{"random bytes as a delta", func() [][]byte { return [][]byte{bytes.Repeat([]byte("not a delta "), 100)} }, "2.0.0"},
		{"a delta against the wrong base", func() [][]byte { return [][]byte{nodeDelta("1.5.0", "2.0.0")} }, "2.0.0"},
		{"a chain in the wrong order", func() [][]byte { return [][]byte{nodeDelta("2.0.0", "3.0.0"), nodeDelta("1.0.0", "2.0.0")} }, "3.0.0"},
		{"a Debian bsdiff patch against the wrong base", func() [][]byte { return [][]byte{debianBsdiff("1.5.0", "2.0.0")} }, "2.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "node")
			newCompatNode(t, dir)
			var paths []string
			for i, p := range tt.payloads() {
				paths = append(paths, filepath.Join(dir, fmt.Sprintf("p%d.delta", i)))
				if err := os.WriteFile(paths[i], p, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sum := sha256.Sum256(img(tt.version))
			installErr := bootSim(t, dir, func(a *agent.Agent) error {
				if err := a.Start(ctx); err != nil {
					return err
				}
				return a.Install(ctx, agent.InstallRequest{Activate: true, Item: agent.InstallItem{
					Kind: agent.Delta, Version: tt.version, SHA256: hex.EncodeToString(sum[:]), Payloads: paths}})
			})
			if !errors.Is(installErr, agent.ErrAbandoned) {
				t.Fatalf("Install = %v, want an error wrapping ErrAbandoned", installErr)
			}
			bootSim(t, dir, func(a *agent.Agent) error {
				st, err := a.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				l := st.Last
				if l == nil || l.Code != agent.Abandoned || l.Slot != hw.SlotA || l.Version != "1.0.0" {
					t.Errorf("last result %+v, want abandoned, running 1.0.0 in A", l)
				}
				if l != nil && (l.Reason == "" || !strings.Contains(installErr.Error(), l.Reason)) {
					t.Errorf("the error %q does not carry the recorded reason %q", installErr, l.Reason)
				}
				if st.Running.Slot != hw.SlotA || st.Update != nil {
					t.Errorf("booted %s, update %+v: want A at rest", st.Running.Slot, st.Update)
				}
				return nil
			})
		})
	}
}

// An install while a set is on trial is refused and changes nothing;
// with CommitTrial it commits the trial first, on purpose.
func TestInstallDuringTrial(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	sha := newCompatNode(t, dir)
	img := filepath.Join(dir, "new.img")
	err := bootSim(t, dir, func(a *agent.Agent) error {
		if err := a.Start(ctx); err != nil {
			return err
		}
		return a.Install(ctx, agent.InstallRequest{Activate: true, Item: agent.InstallItem{Kind: agent.FullImage, Version: "2.0.0", SHA256: sha, Payloads: []string{img}}})
	})
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("install: %v, want a reboot into the trial", err)
	}
	// The trial set runs; its agent has not reached a verdict.
	v3 := sim.Image(256<<10, "3.0.0")
	v3p := filepath.Join(dir, "v3.img")
	if err := os.WriteFile(v3p, v3, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(v3)
	req := agent.InstallRequest{Item: agent.InstallItem{Kind: agent.FullImage, Version: "3.0.0", SHA256: hex.EncodeToString(sum[:]), Payloads: []string{v3p}}}
	before := nodeFiles(t, dir)
	bootSim(t, dir, func(a *agent.Agent) error {
		want := a.Record()
		err := a.Install(ctx, req)
		if !errors.Is(err, agent.ErrTrialRunning) || !strings.Contains(err.Error(), "commit or roll back the trial first") {
			t.Errorf("Install during the trial = %v, want ErrTrialRunning", err)
		}
		if diff := cmp.Diff(want, a.Record()); diff != "" {
			t.Errorf("record changed by a refused install (-before +after):\n%s", diff)
		}
		return nil
	})
	if after := nodeFiles(t, dir); !maps.Equal(before, after) {
		t.Errorf("a refused install changed the node's files")
	}
	req.CommitTrial = true
	// A bad request that asks to commit the trial is refused before the
	// trial is touched.
	bad := req
	bad.Item.SHA256 = strings.Repeat("00", 32)
	bootSim(t, dir, func(a *agent.Agent) error {
		want := a.Record()
		if err := a.Install(ctx, bad); !errors.Is(err, agent.ErrDigest) {
			t.Errorf("Install(wrong digest, CommitTrial) = %v, want ErrDigest", err)
		}
		if diff := cmp.Diff(want, a.Record()); diff != "" {
			t.Errorf("a refused install with CommitTrial changed the record (-before +after):\n%s", diff)
		}
		return nil
	})
	if after := nodeFiles(t, dir); !maps.Equal(before, after) {
		t.Errorf("a refused install with CommitTrial changed the node's files")
	}
	err = bootSim(t, dir, func(a *agent.Agent) error {
		if err := a.Install(ctx, req); err != nil {
			return err
		}
		r := a.Record()
		if r.Last == nil || r.Last.Code != agent.Committed || r.Primary != hw.SlotB {
			t.Errorf("last %+v, primary %s: want the trial committed in B", r.Last, r.Primary)
		}
		if u := r.Update; u == nil || u.Phase != agent.Installed || u.Target != hw.SlotA || u.Item.Version != "3.0.0" {
			t.Errorf("update %+v, want 3.0.0 installed into A", u)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Install with CommitTrial: %v", err)
	}
}

// nodeFiles returns the digest of every file of a sim node.
func nodeFiles(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A signed package whose only item is older than the installed set,
// without the signed downgrade flag, is refused: nothing recorded, the
// sequence number not consumed, nothing changed.
func TestDowngradeWithoutFlagIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	commitToB(t, dir) // 2.0.0 runs in B
	key, kr := releaseKey(t)
	old := sim.Image(256<<10, "1.5.0")
	d := sha256.Sum256(old)
	m := &manifest.Manifest{Schema: 1, Sequence: 5, Items: []manifest.Item{{
		ID: "sys-1.5.0", Component: manifest.ComponentSystem, Kind: manifest.KindFull, To: "1.5.0",
		Payload: "sys-1.5.0.img", Size: uint64(len(old)), Digest: d[:], TargetDigest: d[:], TargetSize: uint64(len(old)),
		Thresholds: manifest.Thresholds{Stop: 1},
	}}}
	pkg := bytes.NewBuffer(signPackage(t, key, m, old))
	before := nodeFiles(t, dir)
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(dir, "store"), Keys: kr})
	if err != nil {
		t.Fatal(err)
	}
	want := a.Record()
	err = a.InstallPackage(ctx, pkg, true)
	var pe *agent.PackageError
	if !errors.As(err, &pe) || !errors.Is(err, manifest.ErrDowngrade) {
		t.Fatalf("InstallPackage(downgrade without the flag) = %v, want a PackageError wrapping manifest.ErrDowngrade", err)
	}
	if diff := cmp.Diff(want, a.Record()); diff != "" {
		t.Errorf("record changed by a refused downgrade (-before +after):\n%s", diff)
	}
	if after := nodeFiles(t, dir); !maps.Equal(before, after) {
		t.Errorf("a refused downgrade changed the node's files")
	}
}

// An erased journal on a provisioned node is not "never provisioned".
func TestErasedJournalIsNotNeverProvisioned(t *testing.T) {
	for _, tt := range []struct {
		name      string
		provision bool
		want      error
	}{
		{"provisioned, journal erased", true, agent.ErrJournalErased},
		{"never provisioned", false, agent.ErrNotProvision},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			if tt.provision {
				newCompatNode(t, dir)
			} else {
				g := sim.DefaultGeometry()
				g.SlotSize = 256 << 10
				if err := sim.Create(dir, g); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(dir, "journal.bin")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bytes.Repeat([]byte{0xFF}, len(data)), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := sim.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, err = agent.Open(agent.Options{Board: b})
			if !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, len(data))) {
				t.Errorf("Open wrote to the erased journal")
			}
		})
	}
}
