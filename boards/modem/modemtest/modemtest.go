package modemtest

import (
	"errors"
	"os"
	"testing"

	"meterupd/boards/modem/modemsim"
)

// The simulator itself is package modemsim; these names keep the tests'
// spelling.
type (
	// Modem is a simulated radio module (modemsim.Modem).
	Modem = modemsim.Modem
	// Step is a scripted answer to one command (modemsim.Step).
	Step = modemsim.Step
	// Dialect selects which module the simulator is (modemsim.Dialect).
	Dialect = modemsim.Dialect
)

// The dialects and the simulated modules' defaults (see modemsim).
const (
	Generic = modemsim.Generic
	Quectel = modemsim.Quectel
	UBlox   = modemsim.UBlox

	DefaultManufacturer = modemsim.DefaultManufacturer
	DefaultModel        = modemsim.DefaultModel
	DefaultRevision     = modemsim.DefaultRevision
	DefaultIMEI         = modemsim.DefaultIMEI
	DefaultCapacity     = modemsim.DefaultCapacity
	QuectelFile         = modemsim.QuectelFile
	QuectelFOTAPath     = modemsim.QuectelFOTAPath
	UBloxRevision       = modemsim.UBloxRevision
)

// VersionOf is the revision the simulated module reports after running
// image (modemsim.VersionOf).
func VersionOf(image []byte) string { return modemsim.VersionOf(image) }

// Options configures StartWith.
type Options struct {
	Dialect Dialect
	// UART makes the port stay while the module restarts, as a UART's
	// does: the module is silent (and loses what it is sent) meanwhile.
	// By default the port vanishes and comes back, as a USB port does.
	UART bool
}

// Start opens a pseudo-terminal pair and runs a simulated module on its
// master side until the test ends. path is the slave's device path, which
// the code under test opens like a UART. On systems without Linux
// pseudo-terminals the test is skipped; so it is when /dev/ptmx cannot be
// opened, except under CI=true, where that fails the test.
//
// At the end of the test, expectations (Expect, Once) that were never met
// fail it.
func Start(t testing.TB) (path string, m *Modem) {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start for a module of the given dialect (see Options).
func StartWith(t testing.TB, o Options) (path string, m *Modem) {
	t.Helper()
	so := modemsim.Options{Dialect: o.Dialect, UART: o.UART, Report: t.Errorf}
	if o.Dialect != Generic {
		so.Dir = t.TempDir()
	}
	m, err := modemsim.Start(so)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("modemtest: needs Linux pseudo-terminals")
	}
	if err != nil {
		// Some sandboxes mount devpts without a usable ptmx. CI must
		// have one: never pass there by skipping.
		if os.Getenv("CI") == "true" {
			t.Fatalf("modemtest: %v", err)
		}
		t.Skipf("modemtest: no pseudo-terminal: %v", err)
	}
	t.Cleanup(m.Close)
	return m.Path(), m
}
