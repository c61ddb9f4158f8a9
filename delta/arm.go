package delta

import (
	"bytes"
	"encoding/binary"
)

// ARM branch transform (a BCJ filter, as xz's ARM filter and Zucchini do).
//
// A 32-bit ARM (A32) BL instruction with condition "always" is a word whose
// top byte is 0xEB; its low 24 bits are the branch offset in words, relative
// to the instruction's address + 8. When code moves between releases, every
// call across the moved region changes its offset, which costs bsdiff a
// nonzero diff byte run per call. Encoding turns the relative offset into an
// absolute target (offset + address), which stays the same when caller and
// callee move together; decoding is the inverse. Go's GOARCH=arm emits A32
// code (never Thumb), and calls are BL, so this is the transform that fits
// the Go executables meters run.
//
// The transform works on whole 4-byte words at 4-aligned image offsets; a
// trailing partial word is left as is. It is a bijection, so data words that
// happen to look like BL round-trip too.

const armBL = 0xEB

// xform is the executable transform a frame is coded through.
type xform byte

const (
	xformNone  xform = iota
	xformARM         // A32 BL (armConvert)
	xformThumb       // Thumb-2 BL (thumbConvert)
	xformRef         // reference correction of the source only (refs.go); the output is plain
	xforms
)

// convert applies x to p, which starts at image offset off (a multiple of
// 4). Neither transform reaches more than 4 bytes before or after the
// bytes it changes, nor across a 4 KiB boundary.
func (x xform) convert(p []byte, off int64, encode bool) {
	switch x {
	case xformARM:
		armConvert(p, off, encode)
	case xformThumb:
		thumbConvert(p, off, encode)
	}
}

// armConvert converts the aligned words of p in place; p starts at image
// offset off, which must be a multiple of 4.
func armConvert(p []byte, off int64, encode bool) {
	for i := 0; i+4 <= len(p); i += 4 {
		if p[i+3] != armBL {
			continue
		}
		w := binary.LittleEndian.Uint32(p[i:])
		v := (w & 0xFFFFFF) << 2
		pc := uint32(off+int64(i)) + 8
		if encode {
			v += pc
		} else {
			v -= pc
		}
		binary.LittleEndian.PutUint32(p[i:], w&0xFF000000|(v>>2)&0xFFFFFF)
	}
}

// isARMELF reports whether b starts with a 32-bit little-endian ELF header
// for machine EM_ARM (40).
func isARMELF(b []byte) bool {
	return len(b) >= 20 && string(b[:4]) == "\x7fELF" && b[4] == 1 && b[5] == 1 &&
		binary.LittleEndian.Uint16(b[18:]) == 40
}

// hasARMELF reports whether b holds a 32-bit little-endian ARM ELF header
// at a 4-aligned offset anywhere (a file system image with ARM programs).
func hasARMELF(b []byte) bool {
	for off := 0; off < len(b); {
		i := bytes.Index(b[off:], []byte("\x7fELF\x01\x01"))
		if i < 0 {
			return false
		}
		if p := off + i; p%4 == 0 && isARMELF(b[p:]) {
			return true
		}
		off += i + 1
	}
	return false
}

// thumbConvert converts the Thumb-2 BL instructions of p in place; p
// starts at image offset off, which must be even. A BL is two halfwords,
// 11110xxx xxxxxxxx then 11111xxx xxxxxxxx (little endian: bytes 1 and 3
// carry the marks); its 22-bit offset in halfwords, relative to the
// instruction's address + 4, becomes absolute (as xz's ARM-Thumb filter
// does). The marks survive the conversion and a BL at i excludes one at
// i+2, so whether a position is converted depends on its own bytes only.
// An instruction that would cross a 4 KiB boundary is left as it is, so
// that no conversion spans two frames.
func thumbConvert(p []byte, off int64, encode bool) {
	for i := 0; i+4 <= len(p); i += 2 {
		if p[i+1]&0xF8 != 0xF0 || p[i+3]&0xF8 != 0xF8 || (off+int64(i))&4095 == 4094 {
			continue
		}
		v := (uint32(p[i+1])&7)<<19 | uint32(p[i])<<11 | (uint32(p[i+3])&7)<<8 | uint32(p[i+2])
		pc := uint32(off+int64(i)+4) >> 1
		if encode {
			v += pc
		} else {
			v -= pc
		}
		p[i+1] = 0xF0 | byte(v>>19)&7
		p[i] = byte(v >> 11)
		p[i+3] = 0xF8 | byte(v>>8)&7
		p[i+2] = byte(v)
		i += 2
	}
}

// blCounts counts the A32 BL words and the Thumb-2 BL pairs of b.
func blCounts(b []byte) (a32, thumb int) {
	for i := 0; i+4 <= len(b); i += 2 {
		if i%4 == 0 && b[i+3] == armBL {
			a32++
		}
		if b[i+1]&0xF8 == 0xF0 && b[i+3]&0xF8 == 0xF8 {
			thumb++
		}
	}
	return a32, thumb
}
