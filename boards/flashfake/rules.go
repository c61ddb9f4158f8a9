package flashfake

import (
	"encoding/binary"
	"math/rand/v2"
)

// Kind is the kind of flash part: its erased value and its program rule.
// The values are the names the power-cut suite prints (flash=) and the sim
// stores in board.json: never rename one.
type Kind string

const (
	// NORErasedFF: NOR erased to 0xFF. Programming may only clear bits; a
	// range may be programmed again as long as it only clears more bits.
	NORErasedFF Kind = "nor-ff"
	// NORErased00: NOR erased to 0x00 (inverted cells, as in some
	// microcontrollers' internal flash). Programming may only set bits.
	// Drivers present such a part inverted (erased reads as 0xFF), so the
	// software above keeps one convention; the fakes hold the physical
	// bytes where they show them (Flash.Raw, the sim's partition files).
	NORErased00 Kind = "nor-00"
	// NAND: erased to 0xFF; each page (write unit) may be programmed once
	// between two erases of its block, and only while fully erased.
	NAND Kind = "nand"
)

// Valid reports whether k is one of the kinds.
func (k Kind) Valid() bool { return k == NORErasedFF || k == NORErased00 || k == NAND }

// Erased is the physical erased value of the part.
func (k Kind) Erased() byte {
	if k == NORErased00 {
		return 0x00
	}
	return 0xFF
}

// NotErased returns the index of the first byte of p that sets a bit old
// has cleared (a NOR program rule violation, in the presented view), or -1.
func NotErased(old, p []byte) int {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:])&^binary.LittleEndian.Uint64(old[i:]) != 0 {
			break
		}
	}
	for ; i < len(p); i++ {
		if p[i]&^old[i] != 0 {
			return i
		}
	}
	return -1
}

// AllErased reports whether every byte of p reads erased (0xFF, in the
// presented view).
func AllErased(p []byte) bool {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:]) != ^uint64(0) {
			return false
		}
	}
	for ; i < len(p); i++ {
		if p[i] != 0xFF {
			return false
		}
	}
	return true
}

// Invert sets dst to the bitwise inverse of src: the physical bytes of a
// NORErased00 part from the presented ones, and back.
func Invert(dst, src []byte) {
	i := 0
	for ; i+8 <= len(src); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], ^binary.LittleEndian.Uint64(src[i:]))
	}
	for ; i < len(src); i++ {
		dst[i] = ^src[i]
	}
}

// TearProgram is a program of p over old cut by the power: a random prefix
// of p is programmed, and the byte at the tear gets only a random subset of
// the bits it should have cleared. It overwrites old with the result and
// returns the part of it that changed (old[:tear+1]). len(p) must be > 0.
func TearProgram(old, p []byte, r *rand.Rand) []byte {
	t := r.IntN(len(p))
	copy(old, p[:t])
	drop := old[t] &^ p[t]             // the bits this byte should lose
	old[t] &^= drop & byte(r.Uint32()) // it loses only some of them
	return old[:t+1]
}

// Pages tracks, on NAND, the pages programmed since their block's last
// erase. The zero value has none programmed.
type Pages struct {
	programmed []bool
}

// Check reports the first page of [off, off+n) programmed since its erase,
// with page size ws, or -1.
func (p *Pages) Check(off, n, ws int64) int64 {
	if p.programmed == nil {
		return -1
	}
	for pg := off / ws; pg < (off+n+ws-1)/ws; pg++ {
		if p.programmed[pg] {
			return pg
		}
	}
	return -1
}

// Mark records a program of [off, off+n) on a part of size bytes.
func (p *Pages) Mark(off, n, ws, size int64) {
	if p.programmed == nil {
		p.programmed = make([]bool, (size+ws-1)/ws)
	}
	for pg := off / ws; pg < (off+n+ws-1)/ws; pg++ {
		p.programmed[pg] = true
	}
}

// Clear records an erase of [off, off+n).
func (p *Pages) Clear(off, n, ws int64) {
	if p.programmed == nil {
		return
	}
	for pg := off / ws; pg < (off+n)/ws; pg++ {
		p.programmed[pg] = false
	}
}

// Clone returns an independent copy.
func (p *Pages) Clone() Pages {
	return Pages{programmed: append([]bool(nil), p.programmed...)}
}
