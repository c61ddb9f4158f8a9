package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"meterupd/boards/hw"
)

// TestMeteringPartitions: a new node has erased audit and oplog partitions
// of the stated sizes; a state directory written before they existed gains
// them (erased) at Open, and keeps everything else.
func TestMeteringPartitions(t *testing.T) {
	g := smallGeometry()
	dir := newNode(t, g)
	for _, name := range meteringParts {
		if err := os.Remove(filepath.Join(dir, name+partExt)); err != nil {
			t.Fatal(err)
		}
	}
	b := openNode(t, dir)
	for _, tc := range []struct {
		name string
		size int64
	}{{hw.PartAudit, AuditSize}, {hw.PartOpLog, OpLogSize}} {
		f, err := b.Partition(tc.name)
		if err != nil {
			t.Fatalf("Partition(%s): %v", tc.name, err)
		}
		if f.Size() != tc.size {
			t.Errorf("Partition(%s).Size() = %d, want %d", tc.name, f.Size(), tc.size)
		}
		if got := readAll(t, f); !bytes.Equal(got, ff(int(tc.size))) {
			t.Errorf("%s not erased", tc.name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, hw.PartAudit+partExt+".tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}
