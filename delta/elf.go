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
	shtRela      = 4
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

// elfFile is a little-endian ARM or AArch64 ELF file found in an image.
type elfFile struct {
	base, end int64        // image offsets of its first byte and past its last known byte
	sections  []elfSection // allocated sections, by image offset (NOBITS last)
	lo, hi    uint32       // its address range
	a64       bool         // AArch64 (ELF64), else 32-bit ARM
}

// findELFs returns the 32-bit ARM and 64-bit AArch64 little-endian ELF
// files of img whose section headers lie inside img, in image order, not
// overlapping.
func findELFs(img []byte) []elfFile {
	var out []elfFile
	for off := 0; off+64 <= len(img); {
		i := bytes.Index(img[off:], []byte("\x7fELF"))
		if i < 0 {
			break
		}
		p := off + i
		if p%4 == 0 && p+64 <= len(img) && img[p+5] == 1 {
			var f elfFile
			ok := false
			switch m := binary.LittleEndian.Uint16(img[p+18:]); {
			case img[p+4] == 1 && m == 40:
				f, ok = parseELF(img, int64(p), false)
			case img[p+4] == 2 && m == 183:
				f, ok = parseELF(img, int64(p), true)
			}
			if ok {
				out = append(out, f)
				off = int(max(f.end, int64(p)+4))
				continue
			}
		}
		off = p + 1
	}
	return out
}

// parseELF reads the section headers of the ELF file at img[base:]: 32-bit
// (ARM), or 64-bit (AArch64, a64) with every allocated address below 4 GiB.
func parseELF(img []byte, base int64, a64 bool) (elfFile, bool) {
	b := img[base:]
	le := binary.LittleEndian
	// Field offsets of the header and of a section header, and its size.
	hdr, sh32 := [4]int{32, 46, 48, 50}, [6]int{0, 4, 8, 12, 16, 20}
	entSize := int64(40)
	word := func(p []byte) int64 { return int64(le.Uint32(p)) }
	if a64 {
		hdr, sh32, entSize = [4]int{40, 58, 60, 62}, [6]int{0, 4, 8, 16, 24, 32}, 64
		word = func(p []byte) int64 { return int64(min(le.Uint64(p), 1<<62)) }
	}
	shoff, shentsize, shnum, shstrndx := word(b[hdr[0]:]), int64(le.Uint16(b[hdr[1]:])), int64(le.Uint16(b[hdr[2]:])), int64(le.Uint16(b[hdr[3]:]))
	if shentsize != entSize || shnum == 0 || shnum > maxSections || shoff > int64(len(b)) || shoff+shnum*entSize > int64(len(b)) || shstrndx >= shnum {
		return elfFile{}, false
	}
	sh := func(i int64) []byte { return b[shoff+i*entSize : shoff+(i+1)*entSize] }
	str := sh(shstrndx)
	strOff, strSize := word(str[sh32[4]:]), word(str[sh32[5]:])
	if strOff > int64(len(b)) || strSize > int64(len(b))-strOff {
		strOff, strSize = 0, 0
	}
	strtab := b[strOff : strOff+strSize]
	f := elfFile{base: base, end: base + shoff + shnum*entSize, lo: ^uint32(0), a64: a64}
	for i := int64(1); i < shnum; i++ {
		s := sh(i)
		typ, flags := le.Uint32(s[sh32[1]:]), le.Uint32(s[sh32[2]:])
		addr, off, size := word(s[sh32[3]:]), word(s[sh32[4]:]), word(s[sh32[5]:])
		if typ != shtNobits && off <= int64(len(b)) && size <= int64(len(b))-off {
			f.end = max(f.end, base+off+size)
		}
		if flags&shfAlloc == 0 || size == 0 || addr >= 1<<32 || size >= 1<<32 || addr+size > 1<<32 {
			continue
		}
		sec := elfSection{vaddr: uint32(addr), vsize: uint32(size), typ: typ, flags: flags}
		if n := int64(le.Uint32(s[sh32[0]:])); n < int64(len(strtab)) {
			if j := bytes.IndexByte(strtab[n:], 0); j >= 0 {
				sec.name = string(strtab[n : n+int64(j)])
			}
		}
		if typ != shtNobits {
			if off > int64(len(b)) || size > int64(len(b))-off {
				continue
			}
			sec.off, sec.size = base+off, size
		}
		f.lo, f.hi = min(f.lo, uint32(addr)), max(f.hi, uint32(min(addr+size, 1<<32-1)))
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
