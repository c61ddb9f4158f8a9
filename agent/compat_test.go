package agent_test

// The journal's compatibility rule (docs/journal.md; reliability case 59),
// tested for real: a node whose update is rolled back to a set carrying an
// older agent must be finished by that older agent, on the journal the
// newer one wrote.
//
// The older agent is v0.1.0, built from git. A newer record reaches it in
// two forms: as this agent writes it (an update committed to B, then a
// rollback to A that this agent starts and the old one finishes), and
// with the optional facts a future agent adds by the rule (new keys at
// every level of the record), which the old agent must ignore.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/journal"
	"meterupd/slots"
)

// v010 is the commit tagged v0.1.0: the first agent released, named by
// its full hash because a CI clone may come without tags.
const v010 = "7eee3fbba68378cab5a38a9be961a487dceca017"

// buildAt builds cmd/meterupd as it was at commit into dir and returns
// the binary's path. It needs the repository's history: outside CI a
// checkout without it skips, under CI=true it fails.
func buildAt(t *testing.T, commit string) string {
	t.Helper()
	need := func(format string, a ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, a...)
		}
		t.Skipf(format, a...)
	}
	if _, err := exec.LookPath("git"); err != nil {
		need("git not found: the old agent is built from the repository's history")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		need("not in a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(top))
	if err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		need("commit %s is not in this clone (a shallow clone? fetch the history): %v", commit, err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("bash", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "-", root, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(t.TempDir(), "meterupd-"+commit[:7])
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/meterupd")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the agent of %s: %v\n%s", commit, err, out)
	}
	return bin
}

// bootSim opens the sim node in dir and runs do with a fresh agent, as
// one start of the node; it returns do's error.
func bootSim(t *testing.T, dir string, do func(a *agent.Agent) error) error {
	t.Helper()
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	return do(a)
}

// newCompatNode provisions a small sim node with 1.0.0 in A and F, and
// writes the 2.0.0 image into dir/new.img; it returns the image's digest.
func newCompatNode(t *testing.T, dir string) string {
	t.Helper()
	const size = 256 << 10
	g := sim.DefaultGeometry()
	g.SlotSize = size
	if err := sim.Create(dir, g); err != nil {
		t.Fatal(err)
	}
	v1 := sim.Image(size, "1.0.0")
	if err := sim.WriteFactory(dir, v1); err != nil {
		t.Fatal(err)
	}
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Provision(b, agent.Factory{Version: "1.0.0", SHA256: sha256.Sum256(v1), Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PowerOn(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	v2 := sim.Image(size, "2.0.0")
	if err := os.WriteFile(filepath.Join(dir, "new.img"), v2, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(v2)
	return hex.EncodeToString(sum[:])
}

// updateThenRollBack has this agent commit 2.0.0 to B, then start a
// rollback to A: the node reboots into A with the rollback in the journal.
func updateThenRollBack(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	commitToB(t, dir)
	err := bootSim(t, dir, func(a *agent.Agent) error {
		if l := a.Record().Last; l == nil || l.Code != agent.Committed || l.Slot != hw.SlotB {
			t.Fatalf("after the trial: last result %+v, want committed on B", l)
		}
		return a.Rollback(ctx, "compatibility test")
	})
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("rollback: %v, want a reboot into A", err)
	}
}

// addFutureFacts commits, over the newest record, the same record with
// the optional facts a later agent adds under the rule: new keys at the
// top level, in the update, its item, the last result and a slot.
func addFutureFacts(t *testing.T, dir string) {
	t.Helper()
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	jf, err := b.Partition(hw.PartJournal)
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(jf, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec map[any]any
	if err := j.Load(&rec); err != nil {
		t.Fatal(err)
	}
	sub := func(m map[any]any, key string) map[any]any {
		t.Helper()
		v, ok := m[key].(map[any]any)
		if !ok {
			t.Fatalf("record has no map %q: %v", key, m)
		}
		return v
	}
	rec["mqtt"] = map[any]any{"epoch": uint64(7), "proto": "5"}
	rec["login"] = map[any]any{"fails": uint64(2), "until": uint64(1796083200)}
	u := sub(rec, "update")
	u["at"] = uint64(1796083200) // a scheduled activation time
	u["modem"] = []any{map[any]any{"ver": "M2", "state": "ready"}}
	sub(u, "item")["comp"] = "system"
	sub(rec, "last")["agent"] = "0.2.0"
	sub(sub(rec, "slots"), "B")["boots"] = uint64(3)
	if err := j.Commit(rec); err != nil {
		t.Fatal(err)
	}
}

func TestOldAgentFinishesRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds v0.1.0 from git")
	}
	old := buildAt(t, v010)
	for _, future := range []bool{false, true} {
		name := "as-written"
		if future {
			name = "with-future-facts"
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			updateThenRollBack(t, dir)
			if future {
				addFutureFacts(t, dir)
				// This agent, too, reads a record with facts it does not know.
				bootSim(t, dir, func(a *agent.Agent) error {
					if u := a.Record().Update; u == nil || u.Phase != agent.RollingBack {
						t.Errorf("this agent on the future record: update %+v, want rolling-back", u)
					}
					return nil
				})
			}
			run := func(args ...string) string {
				t.Helper()
				out, err := exec.Command(old, append([]string{"--state", dir}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("v0.1.0 %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			if out := run("status"); !strings.Contains(out, string(agent.RollingBack)) {
				t.Errorf("v0.1.0 status does not report the rollback in progress:\n%s", out)
			}
			if out := run("run", "--once"); !strings.Contains(out, string(agent.RolledBack)) {
				t.Errorf("v0.1.0 run --once does not finish the rollback:\n%s", out)
			}
			run("status")
			// What the old agent left, read by this one.
			err := bootSim(t, dir, func(a *agent.Agent) error {
				r := a.Record()
				if r.Update != nil {
					t.Errorf("update still in progress after v0.1.0 ran: %+v", r.Update)
				}
				if r.Last == nil || r.Last.Code != agent.RolledBack || r.Last.Slot != hw.SlotA || r.Last.Version != "1.0.0" {
					t.Errorf("last result %+v, want rolled-back to 1.0.0 in A", r.Last)
				}
				if r.Primary != hw.SlotA || r.Slots[hw.SlotB].State != slots.Bad {
					t.Errorf("primary %s, B %s: want primary A, B bad", r.Primary, r.Slots[hw.SlotB].State)
				}
				return a.Start(context.Background())
			})
			if err != nil {
				t.Fatalf("this agent after v0.1.0: %v", err)
			}
		})
	}
}
