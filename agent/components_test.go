package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/modem"
	"meterupd/boards/modem/modemtest"
	"meterupd/boards/sim"
	"meterupd/fileitem"
	"meterupd/manifest"
)

// componentBoard is the sim board with a radio module on a pseudo-terminal
// and a place for file items: the capabilities a board file offers.
type componentBoard struct {
	*sim.Board
	fw       hw.ModemFirmware
	files    string
	maxFiles int64
}

func (b *componentBoard) ModemFirmware() hw.ModemFirmware { return b.fw }
func (b *componentBoard) FileItems() (string, int64)      { return b.files, b.maxFiles }

// fastClock runs the dialects' minute-long waits ten times faster.
type fastClock struct{ start time.Time }

func (c fastClock) Now() time.Time                         { return c.start.Add(time.Since(c.start) * 10) }
func (c fastClock) After(d time.Duration) <-chan time.Time { return time.After(d / 10) }

type dialectCase struct {
	name string
	sim  modemtest.Dialect
	from string
	// fw is the board's driver; wait bounds its waits for the module
	// (install and start), on the fast clock; at bounds each AT answer,
	// on the real clock.
	fw func(path string, wait, at time.Duration) hw.ModemFirmware
}

var componentDialects = []dialectCase{
	{"quectel", modemtest.Quectel, modemtest.DefaultRevision, func(path string, wait, at time.Duration) hw.ModemFirmware {
		fw := modem.FirmwareConfig{Clock: fastClock{time.Now()}, InstallTimeout: wait, ReadyTimeout: wait}
		return &modem.Quectel{Path: path, Config: modem.Config{Timeout: at}, FOTA: modem.QuectelConfig{FirmwareConfig: fw}}
	}},
	{"ublox", modemtest.UBlox, modemtest.UBloxRevision, func(path string, wait, at time.Duration) hw.ModemFirmware {
		fw := modem.FirmwareConfig{Clock: fastClock{time.Now()}, InstallTimeout: wait, ReadyTimeout: wait, APN: "meter.apn"}
		return &modem.UBlox{Path: path, Config: modem.Config{Timeout: at}, FOAT: modem.UBloxConfig{FirmwareConfig: fw}}
	}},
}

// multiPackage is a signed package with a system set (2.0.0, full), the
// module's firmware (requires nothing) and a file item; the system item
// requires the new module firmware. It returns the package and the
// keyring that trusts it.
func multiPackage(t testing.TB, img []byte, modemTo string, file []byte, mutate func(*manifest.Manifest)) ([]byte, *manifest.Keyring) {
	t.Helper()
	return multiPackageBack(t, img, modemTo, "", file, mutate)
}

// multiPackageBack is multiPackage whose modem item, when modemBack is
// set, carries the maker's file back to modemBack (item "modem-back",
// issue 15).
func multiPackageBack(t testing.TB, img []byte, modemTo, modemBack string, file []byte, mutate func(*manifest.Manifest)) ([]byte, *manifest.Keyring) {
	t.Helper()
	key, kr := releaseKey(t)
	fw := []byte("MODEMFW " + modemTo + "\n")
	r := rand.New(rand.NewPCG(5, 7))
	for len(fw) < 5001 {
		fw = append(fw, byte(r.UintN(256)))
	}
	di, dm, df := sha256.Sum256(img), sha256.Sum256(fw), sha256.Sum256(file)
	m := &manifest.Manifest{Schema: 1, Sequence: 9, Items: []manifest.Item{
		{ID: "sys-2.0.0", Component: manifest.ComponentSystem, Kind: manifest.KindFull, To: "2.0.0",
			Prereqs: []manifest.Prereq{{Item: "modem"}},
			Payload: "sys.img", Size: uint64(len(img)), Digest: di[:], TargetDigest: di[:], TargetSize: uint64(len(img))},
		{ID: "modem", Component: manifest.ComponentModem, Kind: manifest.KindFull, To: modemTo,
			Payload: "modem.bin", Size: uint64(len(fw)), Digest: dm[:], TargetDigest: dm[:], TargetSize: uint64(len(fw))},
		{ID: "tariff.cfg", Component: manifest.ComponentFile, Kind: manifest.KindFull, To: "7",
			Payload: "tariff.cfg", Size: uint64(len(file)), Digest: df[:], TargetDigest: df[:], TargetSize: uint64(len(file))},
	}}
	payloads := [][]byte{img, fw, file}
	if modemBack != "" {
		back := []byte("MODEMFW " + modemBack + "\n")
		for len(back) < 4003 {
			back = append(back, byte(r.UintN(256)))
		}
		db := sha256.Sum256(back)
		m.Items[1].Revert = "modem-back"
		m.Items = append(m.Items, manifest.Item{ID: "modem-back", Component: manifest.ComponentModem, Kind: manifest.KindFull, To: modemBack,
			Payload: "modem-back.bin", Size: uint64(len(back)), Digest: db[:], TargetDigest: db[:], TargetSize: uint64(len(back))})
		payloads = append(payloads, back)
	}
	if mutate != nil {
		mutate(m)
	}
	return signPackage(t, key, m, payloads...), kr
}

type componentNode struct {
	dir, files string
	path       string
	sim        *modemtest.Modem
	d          dialectCase
	kr         *manifest.Keyring
	wait       time.Duration
	// at bounds each AT answer: 2 s by default (the simulator answers at
	// once, a loaded test machine may not run it for a while); shorter
	// where the module stays silent on purpose, as every probe waits it.
	at       time.Duration
	maxFiles int64 // the board's bound on a file item (0: the default)
	pkg      []byte
	oldFile  []byte
	newFile  []byte
}

func newComponentNode(t *testing.T, d dialectCase) *componentNode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	newCompatNode(t, dir)
	n := &componentNode{dir: dir, files: filepath.Join(dir, "common"), d: d,
		oldFile: []byte("tariff 6\n"), newFile: []byte("tariff 7\n"), wait: 30 * time.Second, at: 2 * time.Second}
	if err := os.MkdirAll(n.files, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.files, "tariff.cfg"), n.oldFile, 0o644); err != nil {
		t.Fatal(err)
	}
	n.path, n.sim = modemtest.StartWith(t, modemtest.Options{Dialect: d.sim})
	img, err := os.ReadFile(filepath.Join(dir, "new.img"))
	if err != nil {
		t.Fatal(err)
	}
	n.pkg, n.kr = multiPackage(t, img, "NEW-"+d.name, n.newFile, nil)
	return n
}

// open opens the node's agent; onCommit, if set, sees every record.
func (n *componentNode) open(t *testing.T, onCommit func(*agent.Record)) (*agent.Agent, func()) {
	t.Helper()
	b, err := sim.Open(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	cb := &componentBoard{Board: b, fw: n.d.fw(n.path, n.wait, n.at), files: n.files, maxFiles: n.maxFiles}
	a, err := agent.Open(agent.Options{Board: cb, StoreDir: filepath.Join(n.dir, "store"), Keys: n.kr, OnCommit: onCommit})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	return a, func() { b.Close() }
}

func (n *componentNode) file(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.files, "tariff.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkInstalled: the module runs the new firmware, the file holds the
// new content, the system set waits in the idle slot.
func (n *componentNode) checkInstalled(t *testing.T, a *agent.Agent) {
	t.Helper()
	want := "NEW-" + n.d.name
	if got := n.sim.Revision(); got != want {
		t.Errorf("module runs %q, want %q", got, want)
	}
	rec := a.Record()
	if rec.ModemVersion != want {
		t.Errorf("journal: modem version %q, want %q", rec.ModemVersion, want)
	}
	if u := rec.Update; u == nil || u.Phase != agent.Installed || u.Item.Version != "2.0.0" {
		t.Errorf("system set: %+v, want 2.0.0 installed", u)
	}
	if got := n.file(t); !bytes.Equal(got, n.newFile) {
		t.Errorf("file item holds %q, want %q", got, n.newFile)
	}
}

// A package with a system set, the module's firmware and a file item
// installs every item, in the order the prerequisites demand (the module
// first); rolled back before activation, the file item is restored, the
// module keeps its firmware and the result says so per item.
func TestPackageComponents(t *testing.T) {
	for _, d := range componentDialects {
		t.Run(d.name, func(t *testing.T) {
			n := newComponentNode(t, d)
			a, done := n.open(t, nil)
			defer done()
			req, err := a.Request(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.Versions["modem"]; got != d.from {
				t.Errorf("request lists modem firmware %q, want %q", got, d.from)
			}
			if err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false); err != nil {
				t.Fatalf("InstallPackage = %v", err)
			}
			n.checkInstalled(t, a)
			st, err := a.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Components["modem"]; got != "NEW-"+d.name {
				t.Errorf("status: modem firmware %q, want NEW-%s", got, d.name)
			}
			if len(st.Pending) != 2 || st.Pending[0].Step != "done" || st.Pending[1].Step != "done" {
				t.Errorf("status: pending %+v, want both items done", st.Pending)
			}
			if err := a.Rollback(context.Background(), "operator"); err != nil {
				t.Fatalf("Rollback = %v", err)
			}
			if got := n.file(t); !bytes.Equal(got, n.oldFile) {
				t.Errorf("after the rollback the file item holds %q, want %q", got, n.oldFile)
			}
			l := a.Record().Last
			if l == nil || l.Code != agent.Abandoned {
				t.Fatalf("last result %+v, want abandoned", l)
			}
			details := map[string]string{}
			for _, c := range l.Checks {
				for _, o := range c.Outcomes {
					details[c.Item] += o.Detail
				}
			}
			if !strings.Contains(details["modem"], "keeps NEW-"+d.name) || details["tariff.cfg"] != "restored" {
				t.Errorf("per-item report %q", details)
			}
			if a.Record().Comp != nil {
				t.Errorf("components still pending after the rollback")
			}
		})
	}
}

// When the module refuses the firmware, nothing is installed: the file
// item keeps its content, no system set is written, the module keeps its
// firmware, and the result tells what the module runs.
func TestPackageModemRefuses(t *testing.T) {
	for _, d := range componentDialects {
		for _, f := range []struct {
			name string
			set  func(*modemtest.Modem)
			want string
		}{
			{"checksum", func(m *modemtest.Modem) { m.CorruptNextUpload() }, modem.ErrChecksum.Error()},
			{"end error", func(m *modemtest.Modem) { m.FOTAError(502) }, "error 502"},
			{"upload cut", func(m *modemtest.Modem) { m.CutUploadAt(3000) }, modem.ErrPortGone.Error()},
			{"never ready", func(m *modemtest.Modem) { m.NeverReady() }, modem.ErrNotReady.Error()},
		} {
			if d.sim == modemtest.UBlox && (f.name == "end error" || f.name == "checksum") {
				continue // FOAT has no upload checksum and no end code (its refusal is the old version coming back)
			}
			t.Run(d.name+"/"+f.name, func(t *testing.T) {
				t.Parallel() // the module's waits are mostly idle
				n := newComponentNode(t, d)
				if f.name == "never ready" {
					n.wait = 10 * time.Second // 1 s on the fast clock
					n.at = 500 * time.Millisecond
				}
				a, done := n.open(t, nil)
				defer done()
				f.set(n.sim)
				err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false)
				if !errors.Is(err, agent.ErrAbandoned) {
					t.Fatalf("InstallPackage = %v, want ErrAbandoned", err)
				}
				if !strings.Contains(err.Error(), f.want) {
					t.Errorf("InstallPackage = %v, want it to say %v", err, f.want)
				}
				rec := a.Record()
				if rec.Update != nil || rec.Comp != nil {
					t.Errorf("after the refusal: update %+v, components %+v", rec.Update, rec.Comp)
				}
				if got := n.file(t); !bytes.Equal(got, n.oldFile) {
					t.Errorf("file item holds %q, want %q", got, n.oldFile)
				}
				if f.name == "never ready" {
					// The truth is that the module does not answer.
					if !strings.Contains(err.Error(), "does not answer") {
						t.Errorf("InstallPackage = %v, want it to say the module does not answer", err)
					}
				} else if got := n.sim.Revision(); got != d.from {
					t.Errorf("module runs %q, want %q", got, d.from)
				} else if !strings.Contains(err.Error(), "the module runs "+d.from) {
					t.Errorf("InstallPackage = %v, want it to name the module's version %s", err, d.from)
				}
				if rec.Last == nil || rec.Last.Code != agent.Abandoned || !strings.Contains(rec.Last.Reason, "modem") {
					t.Errorf("last %+v", rec.Last)
				}
			})
		}
	}
}

// A power cut right after each journalled step of the module's update:
// the next start resumes from the record and from what the module
// reports, and every item ends installed.
func TestPackageModemPowerCut(t *testing.T) {
	for _, d := range componentDialects {
		for _, phase := range []hw.ModemPhase{hw.ModemUploading, hw.ModemUploaded, hw.ModemStarted, hw.ModemConfirming, hw.ModemDone} {
			t.Run(d.name+"/"+string(phase), func(t *testing.T) {
				n := newComponentNode(t, d)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				n.sim.OnPowerCut(cancel)
				cut := false
				a, done := n.open(t, func(r *agent.Record) {
					if c := r.Comp; !cut && c != nil {
						for _, it := range c.Items {
							if it.Modem != nil && it.Modem.Phase == phase {
								cut = true
								n.sim.PowerCut()
							}
						}
					}
				})
				err := a.InstallPackage(ctx, bytes.NewReader(n.pkg), false)
				done()
				if !cut {
					t.Fatalf("no record with phase %q (install: %v)", phase, err)
				}
				if err == nil && phase != hw.ModemDone {
					t.Fatalf("InstallPackage = nil after a power cut at %q", phase)
				}
				a, done = n.open(t, nil)
				defer done()
				if err := a.Start(context.Background()); err != nil {
					t.Fatalf("Start after the cut = %v", err)
				}
				n.checkInstalled(t, a)
				if slices.ContainsFunc(a.Record().Comp.Items, func(it agent.ComponentItem) bool { return !it.Done }) {
					t.Errorf("items not done: %+v", a.Record().Comp.Items)
				}
			})
		}
	}
}

// A modem firmware the manifest marks irreversible, followed by the system
// set it enables: the plan could not be undone if the system set failed,
// so the package is refused and nothing changes.
func TestPackageIrreversibleModemRefused(t *testing.T) {
	d := componentDialects[0]
	n := newComponentNode(t, d)
	img, err := os.ReadFile(filepath.Join(n.dir, "new.img"))
	if err != nil {
		t.Fatal(err)
	}
	n.pkg, n.kr = multiPackage(t, img, "NEW-"+d.name, n.newFile, func(m *manifest.Manifest) { m.Items[1].Irreversible = true })
	before := nodeFiles(t, n.dir)
	a, done := n.open(t, nil)
	defer done()
	err = a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false)
	if !errors.Is(err, agent.ErrIrreversible) {
		t.Fatalf("InstallPackage = %v, want ErrIrreversible", err)
	}
	if after := nodeFiles(t, n.dir); !maps.Equal(before, after) {
		t.Errorf("a refused package changed the node's files")
	}
	if got := n.sim.Revision(); got != d.from {
		t.Errorf("module runs %q, want %q", got, d.from)
	}
	if slices.ContainsFunc(n.sim.Commands(), func(c string) bool { return strings.Contains(c, "QFUPL") }) {
		t.Errorf("the module was sent the firmware: %q", n.sim.Commands())
	}
}

// Activated and committed, the package's file item stays (its archive is
// dropped) and its version is recorded; the module keeps the new firmware.
func TestPackageComponentsCommitted(t *testing.T) {
	d := componentDialects[0]
	n := newComponentNode(t, d)
	a := n.activate(t)
	rec := a.Record()
	if rec.Last == nil || rec.Last.Code != agent.Committed || rec.Last.Version != "2.0.0" {
		t.Fatalf("last %+v, want 2.0.0 committed", rec.Last)
	}
	if rec.FilesVersion != "7" || rec.ModemVersion != "NEW-"+d.name || rec.Comp != nil {
		t.Errorf("files %q, modem %q, components %+v", rec.FilesVersion, rec.ModemVersion, rec.Comp)
	}
	if got := n.file(t); !bytes.Equal(got, n.newFile) {
		t.Errorf("file item holds %q, want %q", got, n.newFile)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.files, ".archive")); len(ents) != 0 {
		t.Errorf("archive left after the commit: %v", ents)
	}
}

// A file item larger than the board's place takes is refused before
// anything is touched: not the module, not the files, not the journal.
func TestPackageFileItemTooLarge(t *testing.T) {
	d := componentDialects[0]
	n := newComponentNode(t, d)
	n.maxFiles = 4
	before := nodeFiles(t, n.dir)
	a, done := n.open(t, nil)
	defer done()
	if err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false); !errors.Is(err, fileitem.ErrTooLarge) {
		t.Fatalf("InstallPackage = %v, want ErrTooLarge", err)
	}
	if after := nodeFiles(t, n.dir); !maps.Equal(before, after) {
		t.Errorf("a refused package changed the node's files")
	}
	if got := n.sim.Revision(); got != d.from {
		t.Errorf("module runs %q, want %q", got, d.from)
	}
}

// The file item fails after the module was updated (its place is gone):
// nothing else is installed, and the result says the module keeps its new
// firmware.
func TestPackageFileItemFails(t *testing.T) {
	d := componentDialects[0]
	n := newComponentNode(t, d)
	a, done := n.open(t, nil)
	defer done()
	if err := os.RemoveAll(n.files); err != nil {
		t.Fatal(err)
	}
	err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false)
	if !errors.Is(err, agent.ErrAbandoned) || !strings.Contains(err.Error(), "tariff.cfg") {
		t.Fatalf("InstallPackage = %v, want ErrAbandoned (tariff.cfg)", err)
	}
	rec := a.Record()
	if rec.Update != nil || rec.Comp != nil {
		t.Errorf("after the failure: update %+v, components %+v", rec.Update, rec.Comp)
	}
	if _, err := os.Stat(filepath.Join(n.files, "tariff.cfg")); err == nil {
		t.Errorf("a file item was written")
	}
	details := map[string]string{}
	for _, c := range rec.Last.Checks {
		for _, o := range c.Outcomes {
			details[c.Item] += o.Detail
		}
	}
	if !strings.Contains(details["modem"], "keeps NEW-"+d.name) || details["tariff.cfg"] == "" {
		t.Errorf("per-item report %q", details)
	}
	if rec.ModemVersion != "NEW-"+d.name {
		t.Errorf("journal: modem %q, want the version the module runs", rec.ModemVersion)
	}
}

// A modem item that requires the package's own system set cannot be
// installed in one pass (the system set comes last): refused, nothing
// changes.
func TestPackageComponentAfterSystemRefused(t *testing.T) {
	d := componentDialects[0]
	n := newComponentNode(t, d)
	img, err := os.ReadFile(filepath.Join(n.dir, "new.img"))
	if err != nil {
		t.Fatal(err)
	}
	n.pkg, n.kr = multiPackage(t, img, "NEW-"+d.name, n.newFile, func(m *manifest.Manifest) {
		m.Items[0].Prereqs = nil
		m.Items[1].Prereqs = []manifest.Prereq{{Item: "sys-2.0.0"}}
	})
	before := nodeFiles(t, n.dir)
	a, done := n.open(t, nil)
	defer done()
	if err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false); !errors.Is(err, agent.ErrComponentOrder) {
		t.Fatalf("InstallPackage = %v, want ErrComponentOrder", err)
	}
	if after := nodeFiles(t, n.dir); !maps.Equal(before, after) {
		t.Errorf("a refused package changed the node's files")
	}
}

// An archive a lost update left in the place (an older agent took over)
// is not taken for this update's: rolled back, the file item gets the
// content it had when this package came, not the stale archive's.
func TestPackageStaleFileArchive(t *testing.T) {
	d := componentDialects[0]
	n := newComponentNode(t, d)
	stale := fileitem.Place{Dir: n.files}
	if err := stale.Install("tariff.cfg", bytes.NewReader(n.oldFile), int64(len(n.oldFile))); err != nil {
		t.Fatal(err)
	}
	// The place now holds "tariff 6" with an archive of the same (an update
	// never committed); make the current content differ from the archive.
	current := []byte("tariff 6b\n")
	if err := os.WriteFile(filepath.Join(n.files, "tariff.cfg"), current, 0o644); err != nil {
		t.Fatal(err)
	}
	a, done := n.open(t, nil)
	defer done()
	if err := a.InstallPackage(context.Background(), bytes.NewReader(n.pkg), false); err != nil {
		t.Fatalf("InstallPackage = %v", err)
	}
	if err := a.Rollback(context.Background(), "operator"); err != nil {
		t.Fatalf("Rollback = %v", err)
	}
	if got := n.file(t); !bytes.Equal(got, current) {
		t.Errorf("after the rollback the file item holds %q, want %q", got, current)
	}
}
