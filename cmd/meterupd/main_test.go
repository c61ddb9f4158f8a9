package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/agent"
	"meterupd/boards/modem/modemtest"
	"meterupd/boards/sim"
	"meterupd/delta"
)

// mu runs the command line in-process against the sim node in dir.
func mu(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"--state", dir}, args...), &out, &errb)
	return out.String() + errb.String(), err
}

func mustMU(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := mu(t, dir, args...)
	if err != nil {
		t.Fatalf("meterupd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func newNode(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	mustMU(t, dir, "sim", "init", dir, "--image-size", "262144")
	return dir
}

func writeImage(t *testing.T, ver string, size int, marks ...string) (path, sha string) {
	t.Helper()
	img := sim.Image(size, ver, marks...)
	path = filepath.Join(t.TempDir(), ver+".img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(img)
	return path, hex.EncodeToString(s[:])
}

// snapshot digests every file of the node that is flash or journal (not
// the lock, not the RAM of run/).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || d.Name() == "lock" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		m[rel] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed %s", what, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s created %s", what, k)
		}
	}
}

func status(t *testing.T, dir string) agent.Status {
	t.Helper()
	var st agent.Status
	if err := json.Unmarshal([]byte(mustMU(t, dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestUpdateCycleCLI(t *testing.T) {
	dir := newNode(t)
	img, sha := writeImage(t, "2.0.0", 200000)
	out := mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0")
	if !strings.Contains(out, "started slot B") {
		t.Errorf("install output = %q, want the reboot into B", out)
	}
	if st := status(t, dir); st.Update == nil || st.Update.Phase != agent.Activating || st.Running.Slot != "B" {
		t.Fatalf("after install: %+v", st)
	}
	mustMU(t, dir, "run", "--once")
	st := status(t, dir)
	if st.Last == nil || st.Last.Code != agent.Committed || st.Primary != "B" || st.Slots["B"].Version != "2.0.0" {
		t.Fatalf("after run: %+v", st)
	}
	// Roll back by hand: back to A, B marked bad.
	mustMU(t, dir, "rollback", "--reason", "technician test")
	mustMU(t, dir, "run", "--once")
	st = status(t, dir)
	if st.Running.Slot != "A" || st.Last.Code != agent.RolledBack || st.Slots["B"].State != "bad" {
		t.Fatalf("after rollback: %+v", st)
	}
	if out := mustMU(t, dir, "journal"); !strings.Contains(out, "last committed 2.0.0") {
		t.Errorf("journal lacks the commit:\n%s", out)
	}
}

func TestInstallNoActivateThenActivateAndCommit(t *testing.T) {
	dir := newNode(t)
	img, sha := writeImage(t, "2.0.0", 100000)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0", "--no-activate")
	if st := status(t, dir); st.Update == nil || st.Update.Phase != agent.Installed || st.Slots["B"].State != "ready" {
		t.Fatalf("after install --no-activate: %+v", st.Update)
	}
	mustMU(t, dir, "activate")
	mustMU(t, dir, "commit")
	if st := status(t, dir); st.Last == nil || st.Last.Code != agent.Committed {
		t.Fatalf("after commit: %+v", st)
	}
}

// TestBadInputChangesNothing: each bad request gets a clear error, and the
// slots and the journal stay exactly as they were.
func TestBadInputChangesNothing(t *testing.T) {
	img, sha := writeImage(t, "2.0.0", 100000)
	big, bigSHA := writeImage(t, "9.0.0", int(sim.DefaultGeometry().SlotSize)+4096)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		args  []string
		want  string
	}{
		{"wrong digest", nil, []string{"install", img, "--sha256", strings.Repeat("0", 64), "--version", "2.0.0"}, "digest mismatch"},
		{"malformed digest", nil, []string{"install", img, "--sha256", "xyz", "--version", "2.0.0"}, "64 hex digits"},
		{"image larger than the slot", nil, []string{"install", big, "--sha256", bigSHA, "--version", "9.0.0"}, "larger than the slot"},
		{"missing image file", nil, []string{"install", filepath.Join(t.TempDir(), "nope.img"), "--sha256", sha, "--version", "2.0.0"}, "no such file"},
		{"second install while one is in progress", func(t *testing.T, dir string) {
			mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0", "--no-activate")
		}, []string{"install", img, "--sha256", sha, "--version", "2.0.1"}, "already in progress"},
		{"rollback with no previous good slot", nil, []string{"rollback"}, "no previous good set"},
		{"commit with no trial", nil, []string{"commit"}, "no set is on trial"},
		{"activate with nothing installed", nil, []string{"activate"}, "nothing to activate"},
		{"journal from a newer format", func(t *testing.T, dir string) {
			// Rewrite the journal with a record of a newer version.
			b, err := sim.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			a, err := agent.Open(agent.Options{Board: b})
			if err != nil {
				t.Fatal(err)
			}
			r := a.Record()
			r.Version = agent.RecordVersion + 1
			if err := a.Journal().Commit(r); err != nil {
				t.Fatal(err)
			}
		}, []string{"status"}, "newer meterupd"},
		{"corrupt state directory", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "journal.bin"), 1000); err != nil {
				t.Fatal(err)
			}
		}, []string{"install", img, "--sha256", sha, "--version", "2.0.0"}, "damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newNode(t)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			before := snapshot(t, dir)
			out, err := mu(t, dir, tt.args...)
			if err == nil {
				t.Fatalf("meterupd %v succeeded, want an error containing %q:\n%s", tt.args, tt.want, out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("meterupd %v: error %q, want it to contain %q", tt.args, err, tt.want)
			}
			sameSnapshot(t, tt.name, before, snapshot(t, dir))
		})
	}
}

func TestMissingStateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	_, err := mu(t, dir, "status")
	if err == nil || !strings.Contains(err.Error(), "sim init") {
		t.Fatalf("status on a missing node: %v, want a hint to run sim init", err)
	}
	if _, serr := os.Stat(dir); serr == nil {
		t.Errorf("status created %s", dir)
	}
}

func TestInstallDeltaChainCLI(t *testing.T) {
	dir := newNode(t)
	v1 := sim.Image(262144, "1.0.0")
	v2 := sim.Image(262144, "2.0.0")
	v3 := sim.Image(262144, "3.0.0")
	d := t.TempDir()
	var files []string
	for i, pair := range [][2][]byte{{v1, v2}, {v2, v3}} {
		p, err := delta.Diff(pair[0], pair[1], delta.FormatNode)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, fmt.Sprintf("hop%d.delta", i))
		if err := os.WriteFile(f, p, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	sum := sha256.Sum256(v3)
	args := append([]string{"install", "--delta", "--version", "3.0.0", "--sha256", hex.EncodeToString(sum[:])}, files...)
	mustMU(t, dir, args...)
	mustMU(t, dir, "run", "--once")
	st := status(t, dir)
	if st.Last == nil || st.Last.Code != agent.Committed || st.Slots["B"].Version != "3.0.0" || st.Slots["B"].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("after a delta chain install: %+v", st)
	}
	// A chain made from another source is refused before anything is written.
	before := snapshot(t, dir)
	bad := append([]string{"install", "--delta", "--version", "4.0.0", "--sha256", hex.EncodeToString(sum[:]), "--source-sha256", strings.Repeat("ab", 32), "--id", "other-source"}, files...)
	if _, err := mu(t, dir, bad...); err == nil || !strings.Contains(err.Error(), "made from a set") {
		t.Fatalf("delta for another source: %v, want a refusal", err)
	}
	sameSnapshot(t, "delta for another source", before, snapshot(t, dir))
}

// TestRadioInStatusAndHealth: a node with a modem (the simulator on a real
// pseudo-terminal) shows it in status, and a trial whose radio does not
// register is rolled back.
func TestRadioInStatusAndHealth(t *testing.T) {
	port, m := modemtest.Start(t)
	dir := newNode(t)
	mustMU(t, dir, "sim", "modem", port)
	out := mustMU(t, dir, "status")
	if !strings.Contains(out, "radio: ") || !strings.Contains(out, "registered") {
		t.Fatalf("status without the radio:\n%s", out)
	}
	st := status(t, dir)
	if st.Radio == nil || st.Radio.Firmware != m.Revision() {
		t.Fatalf("status radio = %+v, want firmware %q", st.Radio, m.Revision())
	}
	// The new set boots, but the radio does not register: not healthy.
	m.SetRegistration("CREG", 0, "", "", 0)
	m.SetRegistration("CEREG", 0, "", "", 7)
	img, sha := writeImage(t, "2.0.0", 100000)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0")
	mustMU(t, dir, "run", "--once")
	st = status(t, dir)
	if st.Last == nil || st.Last.Code != agent.RolledBack || !strings.Contains(st.Last.Reason, "radio") {
		t.Fatalf("trial without radio: %+v", st.Last)
	}
}

// TestStoreCleanedAtRest: the package store does not grow with every
// update: once an update has ended its payloads are removed.
func TestStoreCleanedAtRest(t *testing.T) {
	dir := newNode(t)
	img, sha := writeImage(t, "2.0.0", 100000)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0")
	if ents, _ := os.ReadDir(filepath.Join(dir, "store")); len(ents) != 1 {
		t.Fatalf("store during the update holds %d files, want the payload", len(ents))
	}
	mustMU(t, dir, "run", "--once")
	if ents, _ := os.ReadDir(filepath.Join(dir, "store")); len(ents) != 0 {
		t.Errorf("store after the update still holds %d files", len(ents))
	}
}
