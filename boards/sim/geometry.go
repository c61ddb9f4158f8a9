package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"meterupd/boards/flashfake"
	"meterupd/boards/hw"
)

// Geometry is the flash layout of a sim node. It is stored in board.json
// and never changes after Create.
type Geometry struct {
	EraseSize   int64 `json:"erase_size"`   // erase-block size
	WriteSize   int64 `json:"write_size"`   // program unit: offsets and lengths of WriteAt are multiples of it
	SlotSize    int64 `json:"slot_size"`    // size of each of the slots A, B and F
	JournalSize int64 `json:"journal_size"` // journal partition, at least 2 erase blocks
	CommonSize  int64 `json:"common_size"`  // common data partition
	Attempts    int   `json:"attempts"`     // boot attempts a slot gets at Create (1..hw.MaxAttempts)
	// Flash is the kind of part: its erased value and program rule.
	// The default (NOR erased to 0xFF) is stored as "" and omitted from
	// board.json, so a state directory of the default kind stays readable
	// by builds that predate the field (v0.1.0 refuses unknown fields).
	Flash FlashKind `json:"flash,omitempty"`
	// AuditSize and OpLogSize override the metering partitions' sizes
	// (0: AuditSize and OpLogSize, the defaults; omitted from board.json
	// then, like Flash). A small node (the power-cut suite's) keeps them
	// small.
	AuditSize int64 `json:"audit_size,omitempty"`
	OpLogSize int64 `json:"oplog_size,omitempty"`
}

// FlashKind is the kind of flash part a sim node models: the rules of
// boards/flashfake (see flashfake.Kind).
type FlashKind = flashfake.Kind

// The kinds of flash part. Their names are those of the power-cut suite's
// flash= field.
const (
	// NORErasedFF: NOR erased to 0xFF; programming may only clear bits.
	// The default; stored as "" (omitted from board.json).
	NORErasedFF = flashfake.NORErasedFF
	// NORErased00: NOR erased to 0x00; programming may only set bits.
	// The partition files hold the physical bytes (erased = 0x00); the
	// board presents the part inverted, as a board driver for such a part
	// does, so the journal, the slots and the boot control keep one
	// convention (erased reads as 0xFF). A power cut tears the physical
	// operation: a torn program sets only some of the bits it should set.
	NORErased00 = flashfake.NORErased00
	// NAND: erased to 0xFF, and each page (write unit) may be programmed
	// only once between two erases of its block, whatever the data: a
	// second program of a page fails with hw.ErrNotErased and changes
	// nothing, as does a program over a page that is not fully erased.
	NAND = flashfake.NAND
)

// Kind returns g's flash kind, NORErasedFF for the default.
func (g Geometry) Kind() FlashKind {
	if g.Flash == "" {
		return NORErasedFF
	}
	return g.Flash
}

// erasedByte is the physical erased value of g's part.
func (g Geometry) erasedByte() byte { return g.Kind().Erased() }

// DefaultGeometry is a 64 KiB-erase-block part with a 4 KiB program unit
// (the strictest alignment an agent is likely to meet, as on NAND pages and
// 4 KiB-sector NOR used page-wise), 8 MiB slots, a 4-block journal, 1 MiB of
// common data and 3 boot attempts.
func DefaultGeometry() Geometry {
	return Geometry{
		EraseSize:   64 << 10,
		WriteSize:   4 << 10,
		SlotSize:    8 << 20,
		JournalSize: 4 * 64 << 10,
		CommonSize:  1 << 20,
		Attempts:    3,
	}
}

// Limits that keep a hostile or damaged board.json from asking for absurd
// files or allocations.
const (
	minEraseSize = 64      // a bootctl record must fit in one erase block
	maxEraseSize = 4 << 20 // largest erase block we model
	maxPartSize  = 1 << 32 // largest partition
)

// ErrBadGeometry is returned for a geometry that breaks a layout rule.
var ErrBadGeometry = errors.New("sim: bad geometry")

// Validate reports whether g is a usable layout: sizes positive, partitions
// multiples of the erase size, the program unit dividing the erase size,
// the journal at least two blocks, attempts within 1..hw.MaxAttempts.
func (g Geometry) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadGeometry}, a...)...)
	}
	switch {
	case g.EraseSize < minEraseSize || g.EraseSize > maxEraseSize:
		return bad("erase size %d outside %d..%d", g.EraseSize, minEraseSize, maxEraseSize)
	case g.WriteSize < 1 || g.WriteSize > g.EraseSize || g.EraseSize%g.WriteSize != 0:
		return bad("write size %d does not divide erase size %d", g.WriteSize, g.EraseSize)
	case g.Attempts < 1 || g.Attempts > hw.MaxAttempts:
		return bad("attempts %d outside 1..%d", g.Attempts, hw.MaxAttempts)
	case g.JournalSize < 2*g.EraseSize:
		return bad("journal size %d below two erase blocks", g.JournalSize)
	case g.SlotSize < HeaderSize:
		return bad("slot size %d below the image header size %d", g.SlotSize, HeaderSize)
	case !g.Kind().Valid():
		return bad("unknown flash kind %q (want %s, %s or %s)", g.Flash, NORErasedFF, NORErased00, NAND)
	}
	for _, p := range []struct {
		name string
		size int64
	}{{"slot", g.SlotSize}, {"journal", g.JournalSize}, {"common", g.CommonSize}} {
		if p.size <= 0 || p.size > maxPartSize || p.size%g.EraseSize != 0 {
			return bad("%s size %d is not a positive multiple of the erase size %d up to %d", p.name, p.size, g.EraseSize, int64(maxPartSize))
		}
	}
	for _, p := range []struct {
		name string
		size int64
	}{{"audit", g.AuditSize}, {"oplog", g.OpLogSize}} {
		if p.size != 0 && (p.size < 2*g.EraseSize || p.size > AuditSize || p.size%g.EraseSize != 0) {
			return bad("%s size %d is not a multiple of the erase size %d from two blocks up to %d", p.name, p.size, g.EraseSize, int64(AuditSize))
		}
	}
	return nil
}

// size returns the size of a partition file.
func (g Geometry) size(part string) int64 {
	switch part {
	case string(hw.SlotA), string(hw.SlotB), string(hw.SlotF):
		return g.SlotSize
	case hw.PartJournal:
		return g.JournalSize
	case hw.PartCommon:
		return g.CommonSize
	case PartBootctl:
		return 2 * g.EraseSize
	}
	return 0
}

// formatVersion is the layout version of a state directory. Open refuses a
// newer one (ErrNewerState) rather than misread it.
const formatVersion = 1

// maxStateFile caps what is read of board.json.
const maxStateFile = 64 << 10

type stateFile struct {
	Format   int       `json:"format"`
	Geometry *Geometry `json:"geometry"`
}

// encodeState is the content of board.json.
func encodeState(g Geometry) []byte {
	if g.Flash == NORErasedFF {
		g.Flash = "" // the default is omitted: see Geometry.Flash
	}
	b, _ := json.MarshalIndent(stateFile{Format: formatVersion, Geometry: &g}, "", "  ") // cannot fail: plain struct
	return append(b, '\n')
}

// decodeState parses board.json: the format version first (a newer one is
// ErrNewerState whatever else it holds), then the geometry, strictly: no
// unknown fields, no trailing data, a valid layout.
func decodeState(data []byte) (Geometry, error) {
	if len(data) > maxStateFile {
		return Geometry{}, fmt.Errorf("%w: board.json larger than %d bytes", ErrCorruptState, maxStateFile)
	}
	var v struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return Geometry{}, fmt.Errorf("%w: board.json: %w", ErrCorruptState, err)
	}
	switch {
	case v.Format > formatVersion:
		return Geometry{}, fmt.Errorf("%w: format %d, this build reads %d", ErrNewerState, v.Format, formatVersion)
	case v.Format < 1:
		return Geometry{}, fmt.Errorf("%w: board.json: format %d", ErrCorruptState, v.Format)
	}
	var s stateFile
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return Geometry{}, fmt.Errorf("%w: board.json: %w", ErrCorruptState, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return Geometry{}, fmt.Errorf("%w: board.json: trailing data", ErrCorruptState)
	}
	if s.Geometry == nil {
		return Geometry{}, fmt.Errorf("%w: board.json: no geometry", ErrCorruptState)
	}
	if err := s.Geometry.Validate(); err != nil {
		return Geometry{}, fmt.Errorf("%w: board.json: %w", ErrCorruptState, err)
	}
	return *s.Geometry, nil
}
