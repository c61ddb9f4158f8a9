package sim

import (
	"bytes"
	"os"
	"testing"

	"meterupd/boards/hw"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestWithoutHeldFiles: a board opened WithoutHeldFiles holds no file
// open, and its flash keeps the same rules and contents as a held one.
func TestWithoutHeldFiles(t *testing.T) {
	dir := newNode(t, smallGeometry())
	before := openFDs(t)
	b := openNode(t, dir, WithoutHeldFiles())
	if got := openFDs(t); got != before {
		t.Errorf("open file descriptors after Open(WithoutHeldFiles) = %d, want %d", got, before)
	}
	f, err := b.Slot(hw.SlotB)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0x5a}, 64)
	if _, err := f.WriteAt(data, 4096); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, 16), 4096); err == nil {
		t.Errorf("WriteAt of 1s over 0s succeeded, want hw.ErrNotErased")
	}
	if got := openFDs(t); got != before {
		t.Errorf("open file descriptors after flash operations = %d, want %d", got, before)
	}
	b.Close()
	held := openNode(t, dir)
	hf, _ := held.Slot(hw.SlotB)
	got := make([]byte, 64)
	if _, err := hf.ReadAt(got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadAt after reopening = %x, %v; want %x", got, err, data)
	}
}
