package agent_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/modem"
	"meterupd/boards/modem/modemsim"
	"meterupd/boards/modem/modemtest"
	"meterupd/boards/sim"
	"meterupd/manifest"
)

// Scenario multi of the power-cut suite (issue 15): the signed package
// updates the system set, the radio module (a Quectel module on a
// pseudo-terminal, driven over DFOTA) and a file item. Each life (each
// mode's run directory) has its own module, set back to its old firmware
// when a life begins. The flash cuts stop the agent (the sim refuses every
// operation after the cut); the module, on its own supply in this
// scenario, finishes what it was told, and the recovery finds out from it
// (the module's own power cuts at every step are TestPackageModemPowerCut).
// At the end of every life the module runs the new firmware, the journal
// says so, the file item holds its new content with no archive left.
// Scenario multi-revert: the modem item carries its revert file and the
// system set fails its trial; at the end of every life the module runs
// its old firmware again, the journal and the per-item report say so, the
// file item holds its old content with no archive left.

const (
	pcModemTo = "NEW-pc"
	pcFilesTo = "7"
)

var (
	pcFileOld = []byte("tariff 6\n")
	pcFileNew = []byte("tariff 7\n")
)

// pcMulti holds the modules of the lives, by run directory.
type pcMulti struct {
	mu    sync.Mutex
	mods  map[string]*modemtest.Modem
	path  map[string]string
	saved map[string]modemsim.State // the module at the cut, for a replay
}

// multiPackage writes the scenario's signed package and the file item's
// old content into the template, and returns the keyring.
func (n *pcNode) multiPackage(t testing.TB, path string) *manifest.Keyring {
	t.Helper()
	n.multi = &pcMulti{mods: map[string]*modemtest.Modem{}, path: map[string]string{}, saved: map[string]modemsim.State{}}
	files := filepath.Join(n.dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "tariff.cfg"), pcFileOld, 0o644); err != nil {
		t.Fatal(err)
	}
	back := ""
	if n.sc.revert {
		back = modemtest.DefaultRevision
	}
	pkg, kr := multiPackageBack(t, n.imgs["2.0.0"], pcModemTo, back, pcFileNew, nil)
	if err := os.WriteFile(path, pkg, 0o644); err != nil {
		t.Fatal(err)
	}
	return kr
}

// multiLives gives the lives run in dir a module.
func (n *pcNode) multiLives(t *testing.T, dir string) {
	if n.multi == nil {
		return
	}
	path, m := modemtest.StartWith(t, modemtest.Options{Dialect: modemtest.Quectel})
	n.multi.mu.Lock()
	n.multi.mods[dir], n.multi.path[dir] = m, path
	n.multi.mu.Unlock()
}

// newLife sets the module of dir back to its old firmware.
func (n *pcNode) newLife(dir string) {
	if n.multi == nil {
		return
	}
	n.multi.mu.Lock()
	m := n.multi.mods[dir]
	n.multi.mu.Unlock()
	m.SetIdentity(modemtest.DefaultManufacturer, modemtest.DefaultModel, modemtest.DefaultRevision, modemtest.DefaultIMEI)
}

// saveModule keeps the state of dir's module at the cut, once it has
// finished what it was told (it has its own supply): a replay of the
// recovery from the same flash starts with the module as it was then.
func (n *pcNode) saveModule(dir string) {
	if n.multi == nil {
		return
	}
	n.multi.mu.Lock()
	defer n.multi.mu.Unlock()
	n.multi.saved[dir], _ = n.multi.mods[dir].Save(30 * time.Second)
}

// loadModule puts dir's module back in the state saveModule kept.
func (n *pcNode) loadModule(dir string) {
	if n.multi == nil {
		return
	}
	n.multi.mu.Lock()
	defer n.multi.mu.Unlock()
	n.multi.mods[dir].Load(n.multi.saved[dir])
}

// board is the board a life's agent runs on: the sim, with the module
// and the file items' place in scenario multi.
func (n *pcNode) board(b *sim.Board, dir string) hw.Board {
	if n.multi == nil {
		return b
	}
	n.multi.mu.Lock()
	path := n.multi.path[dir]
	n.multi.mu.Unlock()
	// The suite runs its lives in parallel on a loaded machine: the
	// driver's default answer time (2 s), generous waits for the module.
	fw := modem.FirmwareConfig{Clock: fastClock{time.Now()}, InstallTimeout: 120 * time.Second, ReadyTimeout: 120 * time.Second}
	q := &modem.Quectel{Path: path, FOTA: modem.QuectelConfig{FirmwareConfig: fw}}
	return &componentBoard{Board: b, fw: q, files: filepath.Join(dir, "files")}
}

// multiFinal checks the other components at the end of a life.
func (n *pcNode) multiFinal(dir string, rec *agent.Record) error {
	if n.multi == nil {
		return nil
	}
	n.multi.mu.Lock()
	m := n.multi.mods[dir]
	n.multi.mu.Unlock()
	modemTo, filesTo, fileNew := pcModemTo, pcFilesTo, pcFileNew
	if n.sc.revert { // rolled back: the module is taken back, the file restored
		modemTo, filesTo, fileNew = modemtest.DefaultRevision, "", pcFileOld
	}
	if got := m.Revision(); got != modemTo {
		return fmt.Errorf("the module runs %q, want %q", got, modemTo)
	}
	if rec.ModemVersion != modemTo || rec.FilesVersion != filesTo || rec.Comp != nil {
		return fmt.Errorf("journal: modem %q, files %q, components %+v", rec.ModemVersion, rec.FilesVersion, rec.Comp)
	}
	if n.sc.revert {
		var detail string
		for _, c := range rec.Last.Checks {
			if c.Item == "modem" {
				for _, o := range c.Outcomes {
					detail += o.Detail
				}
			}
		}
		if detail != "rolled back to "+modemTo {
			return fmt.Errorf("the modem item's report %q, want rolled back to %s", detail, modemTo)
		}
	}
	files := filepath.Join(dir, "files")
	got, err := os.ReadFile(filepath.Join(files, "tariff.cfg"))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, fileNew) {
		return fmt.Errorf("the file item holds %q, want %q", got, fileNew)
	}
	if ents, _ := os.ReadDir(filepath.Join(files, ".archive")); len(ents) != 0 {
		return fmt.Errorf("the file item's archive is left at the end")
	}
	return nil
}
