package delta

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// Locating 32-bit ARM ELF files inside an image (a tar or ext4 file
// system holds whole files, block-aligned) for reference correction. Only
// the encoder reads ELF headers: the decoder gets the regions in the
// patch's reference table.

const (
	shfAlloc     = 0x2
	shfExec      = 0x4
	shtProgbits  = 1
	shtDynamic   = 6
	shtNobits    = 8
	shtRel       = 9
	shtDynsym    = 11
	shtInitArray = 14
	shtFiniArray = 15
	maxSections  = 4096
)

// elfSection is an allocated section of an ELF file found in an image.
type elfSection struct {
	off, size int64 // image offset and bytes in the file (0 for NOBITS)
	vaddr     uint32
	vsize     uint32 // bytes in memory
	typ       uint32
	flags     uint32
	name      string
}

// elfFile is a 32-bit little-endian ARM ELF file found in an image.
type elfFile struct {
	base, end int64        // image offsets of its first byte and past its last known byte
	sections  []elfSection // allocated sections, by image offset (NOBITS last)
	lo, hi    uint32       // its address range
}

// findELFs returns the 32-bit ARM ELF files of img whose section headers
// lie inside img, in image order, not overlapping.
func findELFs(img []byte) []elfFile {
	var out []elfFile
	for off := 0; off+52 <= len(img); {
		i := bytes.Index(img[off:], []byte("\x7fELF\x01\x01"))
		if i < 0 {
			break
		}
		p := off + i
		if p%4 == 0 && isARMELF(img[p:]) {
			if f, ok := parseELF(img, int64(p)); ok {
				out = append(out, f)
				off = int(max(f.end, int64(p)+4))
				continue
			}
		}
		off = p + 1
	}
	return out
}

// parseELF reads the section headers of the ELF file at img[base:].
func parseELF(img []byte, base int64) (elfFile, bool) {
	b := img[base:]
	le := binary.LittleEndian
	if len(b) < 52 {
		return elfFile{}, false
	}
	shoff, shentsize, shnum, shstrndx := int64(le.Uint32(b[32:])), int64(le.Uint16(b[46:])), int64(le.Uint16(b[48:])), int64(le.Uint16(b[50:]))
	if shentsize != 40 || shnum == 0 || shnum > maxSections || shoff+shnum*40 > int64(len(b)) || shstrndx >= shnum {
		return elfFile{}, false
	}
	sh := func(i int64) []byte { return b[shoff+i*40 : shoff+i*40+40] }
	str := sh(shstrndx)
	strOff, strSize := int64(le.Uint32(str[16:])), int64(le.Uint32(str[20:]))
	if strOff+strSize > int64(len(b)) {
		strSize = 0
	}
	strtab := b[strOff : strOff+strSize]
	f := elfFile{base: base, end: base + shoff + shnum*40, lo: ^uint32(0)}
	for i := int64(1); i < shnum; i++ {
		s := sh(i)
		typ, flags := le.Uint32(s[4:]), le.Uint32(s[8:])
		addr, off, size := le.Uint32(s[12:]), int64(le.Uint32(s[16:])), int64(le.Uint32(s[20:]))
		if typ != shtNobits {
			f.end = max(f.end, base+off+size)
		}
		if flags&shfAlloc == 0 || size == 0 || uint64(addr)+uint64(size) > 1<<32 {
			continue
		}
		sec := elfSection{vaddr: addr, vsize: uint32(size), typ: typ, flags: flags}
		if n := int64(le.Uint32(s[0:])); n < int64(len(strtab)) {
			if j := bytes.IndexByte(strtab[n:], 0); j >= 0 {
				sec.name = string(strtab[n : n+int64(j)])
			}
		}
		if typ != shtNobits {
			if off+size > int64(len(b)) {
				continue
			}
			sec.off, sec.size = base+off, size
		}
		f.lo, f.hi = min(f.lo, addr), max(f.hi, addr+uint32(size))
		f.sections = append(f.sections, sec)
	}
	if len(f.sections) == 0 || f.end > int64(len(img)) {
		return elfFile{}, false
	}
	sort.SliceStable(f.sections, func(i, j int) bool {
		a, c := f.sections[i], f.sections[j]
		if (a.size == 0) != (c.size == 0) {
			return c.size == 0
		}
		return a.off < c.off
	})
	return f, true
}

// section returns the file-backed section holding image offset off.
func (f *elfFile) section(off int64) *elfSection {
	i := sort.Search(len(f.sections), func(i int) bool {
		s := &f.sections[i]
		return s.size == 0 || s.off+s.size > off
	})
	if i < len(f.sections) && f.sections[i].size > 0 && f.sections[i].off <= off {
		return &f.sections[i]
	}
	return nil
}
