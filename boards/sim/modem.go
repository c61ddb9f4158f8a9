package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"meterupd/boards/hw"
	"meterupd/boards/modem"
)

// modemPortFile names, in the state directory, the serial port of the
// simulated node's radio modem: a real device or the pseudo-terminal of a
// modem simulator (boards/modem/modemtest). Without it the node has no
// radio.
const modemPortFile = "modem-port"

// SetModemPort gives the node a radio modem on the serial port at path
// ("" removes it).
func (b *Board) SetModemPort(path string) error {
	p := filepath.Join(b.dir, modemPortFile)
	if path == "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(p, []byte(path+"\n"), 0o644)
}

// Linked asks the node's radio modem whether it links (hw.Radio). A node
// without one returns an error wrapping errors.ErrUnsupported.
func (b *Board) Linked(ctx context.Context) error {
	raw, err := os.ReadFile(filepath.Join(b.dir, modemPortFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sim: no modem: %w", errors.ErrUnsupported)
	}
	if err != nil {
		return err
	}
	path := strings.TrimSpace(string(raw))
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

var _ hw.Radio = (*Board)(nil)
