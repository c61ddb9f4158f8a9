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
