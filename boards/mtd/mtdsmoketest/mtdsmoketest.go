package mtdsmoketest

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"

	"meterupd/boards/hw"
	"meterupd/boards/mtd"
)

// ErrCheck: a check of the smoke test failed.
var ErrCheck = errors.New("mtdsmoketest: check failed")

// MinBlocks is the smallest partition Run accepts.
const MinBlocks = 6

// Run checks the driver on dev: erase, program, read back, the flash rules,
// bad-block marking, and a slot written across a bad block. It returns the
// first failure.
func Run(dev mtd.Device, log *slog.Logger) error {
	info, err := dev.Info()
	if err != nil {
		return fmt.Errorf("mtdsmoketest: %w", err)
	}
	log.Info("mtd device", slog.Int("type", int(info.Type)), slog.Int64("size", info.Size),
		slog.Int64("erase", info.EraseSize), slog.Int64("page", info.WriteSize), slog.Int64("oob", info.OOBSize))
	if info.EraseSize <= 0 || info.Size/max(info.EraseSize, 1) < MinBlocks {
		return fmt.Errorf("%w: need %d erase blocks, have size %d erase %d", ErrCheck, MinBlocks, info.Size, info.EraseSize)
	}
	if ecc, ok := dev.(mtd.ECCStater); ok {
		st, err := ecc.ECCStats()
		if err != nil {
			return fmt.Errorf("%w: ECCGETSTATS: %w", ErrCheck, err)
		}
		log.Info("ecc stats", slog.Any("corrected", st.Corrected), slog.Any("failed", st.Failed), slog.Any("bad_blocks", st.BadBlocks))
	}
	whole, err := mtd.New(dev, "smoke")
	if err != nil {
		return fmt.Errorf("mtdsmoketest: open whole: %w", err)
	}
	factoryBad, err := whole.BadBlocks()
	if err != nil {
		return err
	}
	log.Info("bad blocks before", slog.Any("offsets", factoryBad))
	es, ws := whole.EraseSize(), whole.WriteSize()

	// Erase, program two blocks, read back.
	if err := whole.Erase(0, whole.Size()); err != nil {
		return fmt.Errorf("%w: erase all: %w", ErrCheck, err)
	}
	if err := expectErased(whole, 0, 2*es); err != nil {
		return err
	}
	data := pattern(2*es, 1)
	if _, err := whole.WriteAt(data, 0); err != nil {
		return fmt.Errorf("%w: program: %w", ErrCheck, err)
	}
	if err := expectData(whole, 0, data); err != nil {
		return err
	}
	log.Info("erase, program, read back: ok")

	// The flash rules: programming over data, and misaligned writes.
	if info.Type.IsNAND() || data[0] != 0xFF {
		// 0xFF over a programmed page (NAND), or a 1 over a 0 (NOR).
		if _, err := whole.WriteAt(bytes.Repeat([]byte{0xFF}, int(ws)), 0); !errors.Is(err, hw.ErrNotErased) {
			return fmt.Errorf("%w: program over data: got %v, want hw.ErrNotErased", ErrCheck, err)
		}
	}
	if ws > 1 {
		if _, err := whole.WriteAt(make([]byte, ws), 2*es+1); !errors.Is(err, hw.ErrAlignment) {
			return fmt.Errorf("%w: misaligned program: got %v, want hw.ErrAlignment", ErrCheck, err)
		}
	}
	if err := whole.Erase(1, es); !errors.Is(err, hw.ErrAlignment) {
		return fmt.Errorf("%w: misaligned erase: got %v, want hw.ErrAlignment", ErrCheck, err)
	}
	if err := expectData(whole, 0, data); err != nil {
		return fmt.Errorf("%w (after refused writes)", err)
	}
	log.Info("flash rules: ok")

	if !info.Type.IsNAND() {
		log.Info("not NAND: bad-block checks skipped")
		return nil
	}

	// Mark the first good block after block 0 bad, as a worn block would be.
	var victim int64 = -1
	for off := es; off < info.Size; off += es {
		if !contains(factoryBad, off) {
			victim = off
			break
		}
	}
	if err := dev.MarkBad(victim); err != nil {
		return fmt.Errorf("%w: mark block %#x bad: %w", ErrCheck, victim, err)
	}
	if bad, err := dev.IsBad(victim); err != nil || !bad {
		return fmt.Errorf("%w: block %#x after MEMSETBADBLOCK: bad=%v err=%v", ErrCheck, victim, bad, err)
	}
	log.Info("bad-block marking: ok", slog.Int64("block", victim))

	// A slot of 4 blocks, written across the bad block, reads back whole.
	good := info.Size/es - int64(len(factoryBad)) - 1
	slot, err := mtd.New(dev, "slot", mtd.WithSize(4*es))
	if err != nil {
		return fmt.Errorf("%w: open slot: %w", ErrCheck, err)
	}
	p1, err := slot.Physical(es)
	if err != nil {
		return err
	}
	if p1 == victim || contains(factoryBad, p1) {
		return fmt.Errorf("%w: logical block 1 maps to bad block %#x", ErrCheck, p1)
	}
	if err := slot.Erase(0, slot.Size()); err != nil {
		return fmt.Errorf("%w: erase slot: %w", ErrCheck, err)
	}
	img := pattern(slot.Size(), 3)
	for off := int64(0); off < slot.Size(); off += es {
		if _, err := slot.WriteAt(img[off:off+es], off); err != nil {
			return fmt.Errorf("%w: write slot at %#x: %w", ErrCheck, off, err)
		}
	}
	if err := expectData(slot, 0, img); err != nil {
		return err
	}
	raw := make([]byte, es)
	if _, err := dev.ReadAt(raw, p1); err != nil {
		return fmt.Errorf("mtdsmoketest: raw read: %w", err)
	}
	if !bytes.Equal(raw, img[es:2*es]) {
		return fmt.Errorf("%w: logical block 1 is not at physical %#x", ErrCheck, p1)
	}
	log.Info("slot across a bad block: ok", slog.Int64("logical_block_1_at", p1))

	// A slot bigger than the good blocks fails before any write.
	if _, err := mtd.New(dev, "too-big", mtd.WithSize((good+1)*es)); !errors.Is(err, mtd.ErrTooFewGoodBlocks) {
		return fmt.Errorf("%w: slot larger than good blocks: got %v, want mtd.ErrTooFewGoodBlocks", ErrCheck, err)
	}
	log.Info("too few good blocks: ok")
	return nil
}

func pattern(n, seed int64) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func expectErased(f *mtd.Flash, off, n int64) error {
	return expectData(f, off, bytes.Repeat([]byte{0xFF}, int(n)))
}

func expectData(f *mtd.Flash, off int64, want []byte) error {
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, off); err != nil {
		return fmt.Errorf("%w: read at %#x: %w", ErrCheck, off, err)
	}
	if i := firstDiff(got, want); i >= 0 {
		return fmt.Errorf("%w: read back at %#x: got %#02x, want %#02x", ErrCheck, off+int64(i), got[i], want[i])
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
