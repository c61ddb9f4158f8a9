package agent_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/modem/modemtest"
	"meterupd/boards/sim"
	"meterupd/pkgbuild"
)

// Rolling the module back where it can be (issue 15): the modem item
// carries the maker's file back to the version the module ran before.

// withRevert gives the node's package a revert file back to back; with
// unhealthy the system set fails its trial.
func (n *componentNode) withRevert(t *testing.T, back string, unhealthy bool) {
	t.Helper()
	img, err := os.ReadFile(filepath.Join(n.dir, "new.img"))
	if err != nil {
		t.Fatal(err)
	}
	if unhealthy {
		img = sim.Image(len(img), "2.0.0", sim.MarkUnhealthy)
	}
	n.pkg, n.kr = multiPackageBack(t, img, "NEW-"+n.d.name, back, n.newFile, nil)
}

// activate installs the node's package with activation (the node
// reboots into the trial) and runs it to rest.
func (n *componentNode) activate(t *testing.T) *agent.Agent {
	t.Helper()
	a, done := n.open(t, nil)
	err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), true)
	done()
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("InstallPackage(activate) = %v, want a reboot into the trial", err)
	}
	return n.runToRest(t)
}

// runToRest powers the node on and starts its agent until the update has
// come to rest (the trial judged, the module taken back).
func (n *componentNode) runToRest(t *testing.T) *agent.Agent {
	t.Helper()
	for boot := 0; ; boot++ {
		if boot > 4 {
			t.Fatalf("no verdict after %d boots", boot)
		}
		b, err := sim.Open(n.dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.PowerOn(); err != nil {
			t.Fatal(err)
		}
		b.Close()
		a, done := n.open(t, nil)
		err = a.Start(context.Background())
		done()
		if err == nil && a.Record().Update == nil {
			return a
		}
		if err != nil && !errors.Is(err, hw.ErrRebooted) {
			t.Fatalf("Start = %v", err)
		}
	}
}

// itemDetails joins each item's outcome details in a result.
func itemDetails(l *agent.Result) map[string]string {
	details := map[string]string{}
	if l == nil {
		return details
	}
	for _, c := range l.Checks {
		for _, o := range c.Outcomes {
			details[c.Item] += o.Detail
		}
	}
	return details
}

// checkRolledBack: the module runs its old firmware again, the journal
// and the per-item report say so, nothing of the package is left.
func (n *componentNode) checkRolledBack(t *testing.T, a *agent.Agent, code agent.ResultCode) {
	t.Helper()
	if got := n.sim.Revision(); got != n.d.from {
		t.Errorf("module runs %q, want %q again", got, n.d.from)
	}
	rec := a.Record()
	if rec.ModemVersion != n.d.from || rec.Comp != nil || rec.Update != nil {
		t.Errorf("journal: modem %q, components %+v, update %+v", rec.ModemVersion, rec.Comp, rec.Update)
	}
	if rec.Last == nil || rec.Last.Code != code {
		t.Fatalf("last %+v, want %s", rec.Last, code)
	}
	if d := itemDetails(rec.Last); d["modem"] != "rolled back to "+n.d.from || d["tariff.cfg"] != "restored" {
		t.Errorf("per-item report %q", d)
	}
	if got := n.file(t); !bytes.Equal(got, n.oldFile) {
		t.Errorf("file item holds %q, want %q", got, n.oldFile)
	}
	if ents, _ := filepath.Glob(filepath.Join(n.dir, "store", "*.payload")); len(ents) != 0 {
		t.Errorf("payloads left in the store: %v", ents)
	}
}

// Cancelled before activation, and rolled back after a failed trial: the
// module is taken back with the package's revert file, in both dialects.
func TestPackageModemRevert(t *testing.T) {
	for _, d := range componentDialects {
		t.Run(d.name+"/cancelled", func(t *testing.T) {
			t.Parallel()
			n := newComponentNode(t, d)
			n.withRevert(t, d.from, false)
			a, done := n.open(t, nil)
			defer done()
			if err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false); err != nil {
				t.Fatalf("InstallPackage = %v", err)
			}
			n.checkInstalled(t, a)
			if err := a.Rollback(context.Background(), "operator"); err != nil {
				t.Fatalf("Rollback = %v", err)
			}
			n.checkRolledBack(t, a, agent.Abandoned)
		})
		t.Run(d.name+"/trial failed", func(t *testing.T) {
			t.Parallel()
			n := newComponentNode(t, d)
			n.withRevert(t, d.from, true)
			a := n.activate(t)
			n.checkRolledBack(t, a, agent.RolledBack)
			st, err := a.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Components["modem"] != d.from {
				t.Errorf("status: modem firmware %q, want %q", st.Components["modem"], d.from)
			}
		})
	}
}

// The file item fails after the module was updated: the module goes back
// before the package is abandoned.
func TestPackageModemRevertLaterItemFails(t *testing.T) {
	n := newComponentNode(t, componentDialects[0])
	n.withRevert(t, n.d.from, false)
	a, done := n.open(t, nil)
	defer done()
	if err := os.RemoveAll(n.files); err != nil {
		t.Fatal(err)
	}
	err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false)
	if !errors.Is(err, agent.ErrAbandoned) {
		t.Fatalf("InstallPackage = %v, want ErrAbandoned", err)
	}
	if got := n.sim.Revision(); got != n.d.from {
		t.Errorf("module runs %q, want %q again", got, n.d.from)
	}
	rec := a.Record()
	if rec.Comp != nil || rec.ModemVersion != n.d.from {
		t.Errorf("journal: components %+v, modem %q", rec.Comp, rec.ModemVersion)
	}
	if d := itemDetails(rec.Last); d["modem"] != "rolled back to "+n.d.from || d["tariff.cfg"] == "" {
		t.Errorf("per-item report %q", d)
	}
}

// Where the module cannot be taken back, it keeps its new firmware and the
// report says why: its revert file leads elsewhere than where the module
// was, or the module refuses the file.
func TestPackageModemRevertKept(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*componentNode)
		want string
	}{
		{"elsewhere", func(n *componentNode) {
			n.sim.SetIdentity(modemtest.DefaultManufacturer, modemtest.DefaultModel, "A0-OLDER", modemtest.DefaultIMEI)
		}, `the module ran "A0-OLDER" before`},
		{"refused", func(n *componentNode) {}, "error 502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newComponentNode(t, componentDialects[0])
			n.withRevert(t, n.d.from, false)
			tc.set(n)
			a, done := n.open(t, nil)
			defer done()
			if err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false); err != nil {
				t.Fatalf("InstallPackage = %v", err)
			}
			if tc.name == "refused" {
				n.sim.FOTAError(502)
			}
			if err := a.Rollback(context.Background(), "operator"); err != nil {
				t.Fatalf("Rollback = %v", err)
			}
			want := "NEW-" + n.d.name
			if got := n.sim.Revision(); got != want {
				t.Errorf("module runs %q, want %q (kept)", got, want)
			}
			rec := a.Record()
			d := itemDetails(rec.Last)
			if !strings.Contains(d["modem"], "keeps "+want+": not rolled back") || !strings.Contains(d["modem"], tc.want) || d["tariff.cfg"] != "restored" {
				t.Errorf("per-item report %q, want the module kept (%s)", d, tc.want)
			}
			if rec.Comp != nil || rec.ModemVersion != want {
				t.Errorf("journal: components %+v, modem %q", rec.Comp, rec.ModemVersion)
			}
		})
	}
}

// A power cut right after each journalled step of the revert: the next
// start resumes it from the record and from what the module reports, and
// the module ends at its old firmware with the result complete.
func TestPackageModemRevertPowerCut(t *testing.T) {
	for _, d := range componentDialects {
		for _, phase := range []hw.ModemPhase{hw.ModemNew, hw.ModemUploading, hw.ModemUploaded, hw.ModemStarted, hw.ModemConfirming, hw.ModemDone} {
			name := string(phase)
			if name == "" {
				name = "undo"
			}
			t.Run(d.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				n := newComponentNode(t, d)
				n.withRevert(t, d.from, false)
				a, done := n.open(t, nil)
				if err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false); err != nil {
					done()
					t.Fatalf("InstallPackage = %v", err)
				}
				done()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				n.sim.OnPowerCut(cancel)
				cut := false
				a, done = n.open(t, func(r *agent.Record) {
					c := r.Comp
					if cut || c == nil || c.Undo == nil {
						return
					}
					// ModemNew: the cut right after the undo is journalled,
					// before the first step of the revert.
					for _, it := range c.Items {
						if rv := it.Revert; rv != nil && (phase == hw.ModemNew && rv.Step == nil || rv.Step != nil && rv.Step.Phase == phase && phase != hw.ModemNew) {
							cut = true
							n.sim.PowerCut()
						}
					}
				})
				err := a.Rollback(ctx, "operator")
				done()
				if !cut {
					t.Fatalf("no record with the revert at %q (rollback: %v)", name, err)
				}
				a = n.runToRest(t)
				n.checkRolledBack(t, a, agent.Abandoned)
			})
		}
	}
}

// A power cut right after each journalled step of a revert that a later
// item's failure began (before the system set): the next start resumes
// it, then abandons the package with the module back.
func TestPackageModemRevertLaterItemFailsPowerCut(t *testing.T) {
	d := componentDialects[0]
	for _, phase := range []hw.ModemPhase{hw.ModemNew, hw.ModemUploading, hw.ModemUploaded, hw.ModemStarted, hw.ModemConfirming, hw.ModemDone} {
		name := string(phase)
		if name == "" {
			name = "undo"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := newComponentNode(t, d)
			n.withRevert(t, d.from, false)
			if err := os.RemoveAll(n.files); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n.sim.OnPowerCut(cancel)
			cut := false
			a, done := n.open(t, func(r *agent.Record) {
				c := r.Comp
				if cut || c == nil || c.Undo == nil {
					return
				}
				rv := c.Items[0].Revert
				if phase == hw.ModemNew && rv.Step == nil || phase != hw.ModemNew && rv.Step != nil && rv.Step.Phase == phase {
					cut = true
					n.sim.PowerCut()
				}
			})
			err := a.InstallPackage(ctx, bytes.NewReader(n.pkg), false)
			done()
			if !cut {
				t.Fatalf("no record with the revert at %q (install: %v)", name, err)
			}
			a, done = n.open(t, nil)
			defer done()
			// After the last step (done) the cut ends no journal write:
			// the package was abandoned before the start.
			if err := a.Start(context.Background()); err != nil && !errors.Is(err, agent.ErrAbandoned) {
				t.Fatalf("Start after the cut = %v, want ErrAbandoned", err)
			}
			if got := n.sim.Revision(); got != d.from {
				t.Errorf("module runs %q, want %q again", got, d.from)
			}
			rec := a.Record()
			if rec.Comp != nil || rec.ModemVersion != d.from || rec.Last == nil || rec.Last.Code != agent.Abandoned {
				t.Errorf("journal: components %+v, modem %q, last %+v", rec.Comp, rec.ModemVersion, rec.Last)
			}
			if det := itemDetails(rec.Last); det["modem"] != "rolled back to "+d.from || det["tariff.cfg"] == "" {
				t.Errorf("per-item report %q", det)
			}
		})
	}
}

// A package tailored without the revert file (a head-end sends each node
// only its install path) installs; the module then keeps its firmware
// when the package does not stay, and the report says so.
func TestPackageModemRevertFileLeftOut(t *testing.T) {
	n := newComponentNode(t, componentDialects[0])
	n.withRevert(t, n.d.from, false)
	p, err := pkgbuild.Read(bytes.NewReader(n.pkg))
	if err != nil {
		t.Fatal(err)
	}
	var tailored bytes.Buffer
	if err := p.Tailor(&tailored, map[string]bool{"sys.img": true, "modem.bin": true, "tariff.cfg": true}); err != nil {
		t.Fatal(err)
	}
	a, done := n.open(t, nil)
	defer done()
	if err := a.InstallPackage(context.Background(), &tailored, false); err != nil {
		t.Fatalf("InstallPackage(without the revert file) = %v", err)
	}
	n.checkInstalled(t, a)
	if err := a.Rollback(context.Background(), "operator"); err != nil {
		t.Fatalf("Rollback = %v", err)
	}
	want := "NEW-" + n.d.name
	if got := n.sim.Revision(); got != want {
		t.Errorf("module runs %q, want %q (kept)", got, want)
	}
	if d := itemDetails(a.Record().Last); !strings.Contains(d["modem"], "keeps "+want+": the package has no file to take it back") {
		t.Errorf("per-item report %q", d)
	}
}
