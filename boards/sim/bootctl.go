package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"meterupd/boards/hw"
)

// Boot control record: one copy at the start of each of the two erase blocks
// of the bootctl partition, big-endian, padded with 0xFF to the write size.
//
//	off len field
//	  0   4 magic "MUBC"
//	  4   1 version (1)
//	  5   1 number of slots in Order (0..3)
//	  6   1 Left presence mask: bit 0 A, bit 1 B, bit 2 F
//	  7   1 reserved, 0
//	  8   4 sequence number (serial arithmetic: a is newer than b if int32(a-b) > 0)
//	 12   3 Order: slot letters 'A' 'B' 'F', unused entries 0
//	 15   3 Left of A, B, F (0..hw.MaxAttempts; 0 when absent)
//	 18   2 reserved, 0
//	 20   4 CRC-32 (IEEE) of bytes 0..19
//
// The CRC covers every byte, so a flipped bit anywhere, a torn program or an
// erased copy reads as invalid; the newest valid copy wins.
const (
	bootRecSize    = 24
	bootRecVersion = 1
	bootMagic      = "MUBC"
)

// Errors of the boot control.
var (
	// ErrBootCorrupt: no copy of the boot state is valid. The bootloader
	// then boots F; it never invents an order.
	ErrBootCorrupt = fmt.Errorf("sim: boot control corrupt (%w)", hw.ErrBootStateLost)
	// ErrBadBootState: Store was given a state the record cannot hold
	// (unknown or repeated slot, attempts outside 0..hw.MaxAttempts).
	ErrBadBootState = errors.New("sim: invalid boot state")
	// ErrNotBooted: the node has not been powered on (no run/booted).
	ErrNotBooted = errors.New("sim: node not powered on")
)

// BootRecordError is a malformed boot control copy; Offset is the offending
// byte within the record.
type BootRecordError struct {
	Offset int
	Reason string
}

func (e *BootRecordError) Error() string {
	return fmt.Sprintf("sim: boot record: %s at byte %d", e.Reason, e.Offset)
}

// Unwrap makes every malformed copy an ErrBootCorrupt.
func (e *BootRecordError) Unwrap() error { return ErrBootCorrupt }

var slotOrder = [3]hw.Slot{hw.SlotA, hw.SlotB, hw.SlotF}

func slotIndex(s hw.Slot) int {
	for i, t := range slotOrder {
		if t == s {
			return i
		}
	}
	return -1
}

// encodeBootState returns the record for s with sequence number seq.
func encodeBootState(s hw.BootState, seq uint32) ([]byte, error) {
	if len(s.Order) > len(slotOrder) {
		return nil, fmt.Errorf("%w: %d slots in order", ErrBadBootState, len(s.Order))
	}
	r := make([]byte, bootRecSize)
	copy(r, bootMagic)
	r[4] = bootRecVersion
	r[5] = byte(len(s.Order))
	binary.BigEndian.PutUint32(r[8:], seq)
	for i, sl := range s.Order {
		x := slotIndex(sl)
		if x < 0 {
			return nil, fmt.Errorf("%w: slot %q in order", ErrBadBootState, sl)
		}
		for _, prev := range s.Order[:i] {
			if prev == sl {
				return nil, fmt.Errorf("%w: slot %q twice in order", ErrBadBootState, sl)
			}
		}
		r[12+i] = sl[0]
	}
	for sl, n := range s.Left {
		x := slotIndex(sl)
		if x < 0 {
			return nil, fmt.Errorf("%w: attempts for slot %q", ErrBadBootState, sl)
		}
		if n < 0 || n > hw.MaxAttempts {
			return nil, fmt.Errorf("%w: slot %s has %d attempts, want 0..%d", ErrBadBootState, sl, n, hw.MaxAttempts)
		}
		r[6] |= 1 << x
		r[15+x] = byte(n)
	}
	binary.BigEndian.PutUint32(r[20:], crc32.ChecksumIEEE(r[:20]))
	return r, nil
}

// decodeBootState parses one record copy. Any deviation from what
// encodeBootState writes is a *BootRecordError.
func decodeBootState(r []byte) (hw.BootState, uint32, error) {
	bad := func(off int, reason string) (hw.BootState, uint32, error) {
		return hw.BootState{}, 0, &BootRecordError{Offset: off, Reason: reason}
	}
	if len(r) < bootRecSize {
		return bad(len(r), "short record")
	}
	if string(r[:4]) != bootMagic {
		return bad(0, "bad magic")
	}
	if got, want := binary.BigEndian.Uint32(r[20:]), crc32.ChecksumIEEE(r[:20]); got != want {
		return bad(20, "checksum mismatch")
	}
	if r[4] != bootRecVersion {
		return bad(4, "unknown version")
	}
	n := int(r[5])
	if n > len(slotOrder) {
		return bad(5, "order too long")
	}
	if r[6]&^0b111 != 0 {
		return bad(6, "unknown slot in mask")
	}
	if r[7] != 0 || r[18] != 0 || r[19] != 0 {
		return bad(7, "reserved byte set")
	}
	s := hw.BootState{Order: make([]hw.Slot, 0, n), Left: make(map[hw.Slot]int, 3)}
	for i := 0; i < len(slotOrder); i++ {
		c := r[12+i]
		if i >= n {
			if c != 0 {
				return bad(12+i, "order entry past its length")
			}
			continue
		}
		sl := hw.Slot(string(rune(c)))
		if !sl.Valid() {
			return bad(12+i, "unknown slot in order")
		}
		for _, prev := range s.Order {
			if prev == sl {
				return bad(12+i, "slot twice in order")
			}
		}
		s.Order = append(s.Order, sl)
	}
	for i, sl := range slotOrder {
		left := int(r[15+i])
		if left > hw.MaxAttempts {
			return bad(15+i, "attempts out of range")
		}
		if r[6]&(1<<i) == 0 {
			if left != 0 {
				return bad(15+i, "attempts for an absent slot")
			}
			continue
		}
		s.Left[sl] = left
	}
	return s, binary.BigEndian.Uint32(r[8:]), nil
}

// newer reports whether sequence number a is newer than b.
func newer(a, b uint32) bool { return int32(a-b) > 0 }

// bootControl is the hw.BootControl of a Board.
type bootControl struct{ b *Board }

var _ hw.BootControl = bootControl{}

// Boot returns the boot control: the booted slot (run/booted) and the boot
// state in the bootctl partition.
func (b *Board) Boot() hw.BootControl { return bootControl{b} }

// Booted reads run/booted, written by PowerOn.
func (c bootControl) Booted() (hw.Slot, error) {
	data, err := os.ReadFile(filepath.Join(c.b.dir, runDir, bootedRun))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNotBooted
	}
	if err != nil {
		return "", fmt.Errorf("sim: booted: %w", err)
	}
	s := hw.Slot(data)
	if !s.Valid() {
		return "", fmt.Errorf("%w: run/booted holds %q", ErrCorruptState, data)
	}
	return s, nil
}

// Load returns the newest valid copy of the boot state, or an error
// wrapping ErrBootCorrupt when neither copy is valid.
func (c bootControl) Load() (hw.BootState, error) {
	s, _, _, err := c.load()
	return s, err
}

// load returns the newest valid state, its sequence number and copy index.
func (c bootControl) load() (hw.BootState, uint32, int, error) {
	f := c.b.parts[PartBootctl]
	var (
		best    hw.BootState
		bestSeq uint32
		bestIdx = -1
		errs    [2]error
	)
	var rec [bootRecSize]byte
	for i := range 2 {
		if _, err := f.ReadAt(rec[:], int64(i)*c.b.geo.EraseSize); err != nil {
			if !errors.Is(err, ErrIO) {
				return hw.BootState{}, 0, 0, fmt.Errorf("sim: load boot state: %w", err)
			}
			errs[i] = err // an unreadable copy is an invalid one
			continue
		}
		s, seq, err := decodeBootState(rec[:])
		if err != nil {
			errs[i] = err
			continue
		}
		if bestIdx < 0 || newer(seq, bestSeq) {
			best, bestSeq, bestIdx = s, seq, i
		}
	}
	if bestIdx < 0 {
		return hw.BootState{}, 0, 0, fmt.Errorf("sim: load boot state: %w: copy 0: %w; copy 1: %w", ErrBootCorrupt, errs[0], errs[1])
	}
	return best, bestSeq, bestIdx, nil
}

// Store writes s over the older copy: one erase and one program (two flash
// operations). A power cut at either leaves the other copy, the previous
// state, as the newest valid one.
func (c bootControl) Store(s hw.BootState) error {
	_, seq, idx, err := c.load()
	target := 0
	switch {
	case err == nil:
		target, seq = 1-idx, seq+1
	case errors.Is(err, ErrBootCorrupt):
		seq = 1
	default:
		return err
	}
	rec, err := encodeBootState(s, seq)
	if err != nil {
		return err
	}
	g := c.b.geo
	f := c.b.parts[PartBootctl]
	off := int64(target) * g.EraseSize
	if err := f.Erase(off, g.EraseSize); err != nil {
		return fmt.Errorf("sim: store boot state: %w", err)
	}
	n := (int64(len(rec)) + g.WriteSize - 1) / g.WriteSize * g.WriteSize
	page := make([]byte, n)
	copy(page, rec)
	for i := len(rec); i < len(page); i++ {
		page[i] = 0xFF
	}
	if _, err := f.WriteAt(page, off); err != nil {
		return fmt.Errorf("sim: store boot state: %w", err)
	}
	return nil
}
