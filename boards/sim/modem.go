package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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

// Modem opens the node's radio modem (an optional board capability). A
// node without one returns an error wrapping errors.ErrUnsupported.
func (b *Board) Modem(ctx context.Context) (*modem.Modem, error) {
	raw, err := os.ReadFile(filepath.Join(b.dir, modemPortFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sim: no modem: %w", errors.ErrUnsupported)
	}
	if err != nil {
		return nil, err
	}
	return modem.Open(ctx, strings.TrimSpace(string(raw)), modem.Config{Logger: b.log})
}
