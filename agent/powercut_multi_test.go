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
	mu   sync.Mutex
	mods map[string]*modemtest.Modem
	path map[string]string
}

// multiPackage writes the scenario's signed package and the file item's
// old content into the template, and returns the keyring.
func (n *pcNode) multiPackage(t testing.TB, path string) *manifest.Keyring {
	t.Helper()
	n.multi = &pcMulti{mods: map[string]*modemtest.Modem{}, path: map[string]string{}}
	files := filepath.Join(n.dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "tariff.cfg"), pcFileOld, 0o644); err != nil {
		t.Fatal(err)
	}
	pkg, kr := multiPackage(t, n.imgs["2.0.0"], pcModemTo, pcFileNew, nil)
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
	if got := m.Revision(); got != pcModemTo {
		return fmt.Errorf("the module runs %q, want %q", got, pcModemTo)
	}
	if rec.ModemVersion != pcModemTo || rec.FilesVersion != pcFilesTo || rec.Comp != nil {
		return fmt.Errorf("journal: modem %q, files %q, components %+v", rec.ModemVersion, rec.FilesVersion, rec.Comp)
	}
	files := filepath.Join(dir, "files")
	got, err := os.ReadFile(filepath.Join(files, "tariff.cfg"))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, pcFileNew) {
		return fmt.Errorf("the file item holds %q, want %q", got, pcFileNew)
	}
	if ents, _ := os.ReadDir(filepath.Join(files, ".archive")); len(ents) != 0 {
		return fmt.Errorf("the file item's archive is left after the commit")
	}
	return nil
}
