package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"meterupd/boards/hw"
)

// The metering partitions (hw.PartAudit, hw.PartOpLog) came after the first
// state directories. Their sizes derive from the geometry, so board.json
// (and its format version) is unchanged and older code still opens a newer
// directory (it ignores the extra files). Open creates a missing one,
// erased, so a directory written by older code gains them.
const (
	// AuditSize is the legal audit log partition: 1 MiB (on the default
	// geometry's 4 KiB program unit, 256 records; see docs/metering.md).
	AuditSize = 1 << 20
	// OpLogSize is the operational ring: 256 KiB, at least two erase blocks.
	OpLogSize = 256 << 10
)

var meteringParts = [...]string{hw.PartAudit, hw.PartOpLog}

// meteringSize returns the size of a metering partition on g.
func meteringSize(g Geometry, name string) (int64, bool) {
	up := func(n int64) int64 { return (n + g.EraseSize - 1) / g.EraseSize * g.EraseSize }
	switch name {
	case hw.PartAudit:
		if g.AuditSize > 0 {
			return g.AuditSize, true
		}
		return up(AuditSize), true
	case hw.PartOpLog:
		if g.OpLogSize > 0 {
			return g.OpLogSize, true
		}
		return max(up(OpLogSize), 2*g.EraseSize), true
	}
	return 0, false
}

// partSize is the size of any partition file.
func (g Geometry) partSize(name string) int64 {
	if n, ok := meteringSize(g, name); ok {
		return n
	}
	return g.size(name)
}

// createMetering creates the metering partition files that dir lacks,
// erased. A file appears complete or not at all (temp file, rename), so a
// power cut during the creation leaves nothing half made.
func createMetering(dir string, g Geometry) error {
	for _, name := range meteringParts {
		p := filepath.Join(dir, name+partExt)
		if _, err := os.Stat(p); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sim: %w", err)
		}
		n, _ := meteringSize(g, name)
		tmp := p + ".tmp"
		if err := writeErased(tmp, n, g.erasedByte()); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
	}
	return nil
}
