package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"meterupd/boards/hw"
	"meterupd/boards/modem"
)

// modemPortFile names, in the state directory, the serial port of the
// simulated node's radio modem: a real device or the pseudo-terminal of a
// modem simulator (boards/modem/modemsim). Without it the node has no
// radio.
const modemPortFile = "modem-port"

// modemDialectFile names, in the state directory, the AT dialect in which
// the node's module takes its firmware (ModemDialects); without it the
// node's module cannot be updated (no hw.ModemFirmware).
const modemDialectFile = "modem-dialect"

// ModemDialects are the firmware dialects SetModemDialect takes.
var ModemDialects = []string{"quectel", "ublox"}

// ErrModemDialect: SetModemDialect was given a dialect it does not know.
var ErrModemDialect = errors.New("sim: unknown modem firmware dialect")

// SetModemDialect says in which maker's dialect the node's module takes
// its firmware ("quectel", "ublox"; "" takes the capability away), as a
// board file picks modem.Quectel or modem.UBlox.
func (b *Board) SetModemDialect(d string) error {
	if d != "" && !slices.Contains(ModemDialects, d) {
		return fmt.Errorf("%w: %q (want one of %v)", ErrModemDialect, d, ModemDialects)
	}
	return b.setLine(modemDialectFile, d)
}

// setLine writes a one-line setting file of the state directory; ""
// removes it.
func (b *Board) setLine(name, v string) error {
	p := filepath.Join(b.dir, name)
	if v == "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(p, []byte(v+"\n"), 0o644)
}

// ModemFirmware is the node's module as a firmware update target
// (hw.ModemFirmwareBoard): the driver of its dialect on its port, or nil
// when the node has no port or no dialect set. The drivers' defaults are
// those of a real board (install up to 10 or 25 minutes); the simulated
// module (`meterupd sim modem --simulate`) takes well under a second.
func (b *Board) ModemFirmware() hw.ModemFirmware {
	path, err := b.modemPort()
	if err != nil || path == "" {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(b.dir, modemDialectFile))
	if err != nil {
		return nil
	}
	cfg := modem.Config{Logger: b.log}
	switch strings.TrimSpace(string(raw)) {
	case "quectel":
		return &modem.Quectel{Path: path, Config: cfg}
	case "ublox":
		return &modem.UBlox{Path: path, Config: cfg}
	}
	return nil
}

// modemPort is the node's modem port ("" without one).
func (b *Board) modemPort() (string, error) {
	raw, err := os.ReadFile(filepath.Join(b.dir, modemPortFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(raw)), nil
}

// SetModemPort gives the node a radio modem on the serial port at path
// ("" removes it).
func (b *Board) SetModemPort(path string) error {
	return b.setLine(modemPortFile, path)
}

// Linked asks the node's radio modem whether it links (hw.Radio). A node
// without one returns an error wrapping errors.ErrUnsupported.
func (b *Board) Linked(ctx context.Context) error {
	path, err := b.modemPort()
	if err != nil {
		return err
	}
	if path == "" {
		return fmt.Errorf("sim: no modem: %w", errors.ErrUnsupported)
	}
	b.radioMu.Lock()
	if b.radio == nil || b.radio.Path != path {
		b.radio = &modem.Radio{Path: path, Config: modem.Config{Logger: b.log}}
	}
	r := b.radio
	b.radioMu.Unlock()
	return r.Linked(ctx)
}

// RadioStatus is the answer of the last Linked, without I/O (hw.Radio).
func (b *Board) RadioStatus() (hw.RadioStatus, bool) {
	b.radioMu.Lock()
	r := b.radio
	b.radioMu.Unlock()
	if r == nil {
		return hw.RadioStatus{}, false
	}
	return r.RadioStatus()
}

var (
	_ hw.Radio              = (*Board)(nil)
	_ hw.ModemFirmwareBoard = (*Board)(nil)
)
