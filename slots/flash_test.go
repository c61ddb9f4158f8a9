package slots_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/slots"
)

func simSlot(t *testing.T, f *sim.Faults) (hw.Flash, *sim.Board) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "n")
	g := sim.DefaultGeometry()
	g.SlotSize = 4 * g.EraseSize
	if err := sim.Create(dir, g); err != nil {
		t.Fatal(err)
	}
	var opts []sim.Option
	if f != nil {
		opts = append(opts, sim.WithFaults(f))
	}
	b, err := sim.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fl, err := b.Slot(hw.SlotB)
	if err != nil {
		t.Fatal(err)
	}
	return fl, b
}

func TestWriteBlockRewriteAndHash(t *testing.T) {
	f, b := simSlot(t, nil)
	es := f.EraseSize()
	blk := bytes.Repeat([]byte{0x5a}, int(es))
	tail := []byte("a short last block, not a multiple of the write unit")
	for i, p := range [][]byte{blk, blk, tail} {
		if err := slots.WriteBlock(f, int64(i), p); err != nil {
			t.Fatalf("WriteBlock(%d): %v", i, err)
		}
	}
	// Writing block 1 again (a resume) is safe: it is erased first.
	other := bytes.Repeat([]byte{0xa5}, int(es))
	if err := slots.WriteBlock(f, 1, other); err != nil {
		t.Fatalf("WriteBlock again: %v", err)
	}
	img := append(append(append([]byte{}, blk...), other...), tail...)
	got, err := slots.Hash(f, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(img); got != want {
		t.Errorf("Hash = %x, want %x", got, want)
	}
	// 4 KiB program chunks: an erase block is 16 program operations.
	ops := b.Ops()
	if err := slots.WriteBlock(f, 3, blk); err != nil {
		t.Fatal(err)
	}
	if n, want := b.Ops()-ops, 1+es/slots.ProgramChunk; n != want {
		t.Errorf("one block took %d flash operations, want %d", n, want)
	}
}

func TestWriteBlockErrors(t *testing.T) {
	f, _ := simSlot(t, nil)
	es := f.EraseSize()
	if err := slots.WriteBlock(f, 4, []byte{1}); !errors.Is(err, slots.ErrTooLarge) {
		t.Errorf("WriteBlock past the slot: %v, want ErrTooLarge", err)
	}
	if err := slots.WriteBlock(f, 0, make([]byte, es+1)); err == nil {
		t.Error("WriteBlock of more than an erase block succeeded")
	}
	if _, err := slots.Hash(f, f.Size()+1); !errors.Is(err, slots.ErrTooLarge) {
		t.Errorf("Hash past the slot: %v, want ErrTooLarge", err)
	}
	// A program that silently does nothing is caught by the read-back.
	g, _ := simSlot(t, &sim.Faults{SilentBlocks: map[string][]int64{"B": {2}}})
	if err := slots.WriteBlock(g, 2, bytes.Repeat([]byte{1}, 100)); !errors.Is(err, slots.ErrVerify) {
		t.Errorf("WriteBlock on a silent block: %v, want ErrVerify", err)
	}
	h, _ := simSlot(t, &sim.Faults{BadBlocks: map[string][]int64{"B": {1}}})
	if err := slots.WriteBlock(h, 1, []byte{1, 2, 3}); !errors.Is(err, hw.ErrBadBlock) {
		t.Errorf("WriteBlock on a bad block: %v, want hw.ErrBadBlock", err)
	}
}
